package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mvlan/mvlan/dhcp"
)

// TestStepBack: only a step of the wall clock back against boot time
// (by at least a second) moves a lease; a slew, a step forward (maybe
// time that really passed: a VM paused) and an unreadable clock do not.
func TestStepBack(t *testing.T) {
	const s = time.Second
	for _, tc := range []struct {
		was, now, want time.Duration
	}{
		{100 * s, 100*s - 2*time.Hour, -2 * time.Hour},
		{100 * s, 99 * s, -s},
		{100 * s, 100*s - 500*time.Millisecond, 0}, // a slew
		{100 * s, 100*s + 2*time.Hour, 0},          // forward: left to the wall clock
		{0, 50 * s, 0},
		{100 * s, 0, 0},
	} {
		if got := stepBack(tc.was, tc.now); got != tc.want {
			t.Errorf("stepBack(%v, %v) = %v; want %v", tc.was, tc.now, got, tc.want)
		}
	}
	if clockSkew() == 0 {
		t.Error("CLOCK_BOOTTIME not read")
	}
}

// TestShifted: a lease's times move by the step, so it keeps the time it
// had left, and the original is not changed.
func TestShifted(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	obtained := now.Add(2*time.Hour - 10*time.Minute) // before a step back of 2 h
	l := &dhcp.Lease{Addr: netip.MustParsePrefix("192.168.60.10/24"), Obtained: obtained, Renew: obtained.Add(30 * time.Minute),
		Rebind: obtained.Add(52 * time.Minute), Expiry: obtained.Add(time.Hour)}
	got := shifted(l, -2*time.Hour)
	if left := got.Renew.Sub(now); left != 20*time.Minute {
		t.Errorf("renewal %v after now once shifted; want the 20 min it had left", left)
	}
	if got.Expiry.Sub(got.Obtained) != time.Hour || l.Renew != obtained.Add(30*time.Minute) {
		t.Errorf("shifted %+v from %+v: want the lease's length kept and the original untouched", got, l)
	}
	if shifted(nil, time.Hour) != nil {
		t.Error("no lease became one")
	}
}
