package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mvlan/mvlan/dhcp"
)

// TestWallSteps: slewing (the skew moving by less than a second at a
// time, however far in all) is no step; a jump of the wall clock against
// boot time is, once, by its size, forward or back; suspend (both clocks
// moving on) is none.
func TestWallSteps(t *testing.T) {
	wall := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	boot := 100 * time.Second
	w := &wallSteps{wall: func() time.Time { return wall }, boot: func() time.Duration { return boot }}
	var steps []time.Duration
	look := func() { w.settle(func(s time.Duration) { steps = append(steps, s) }) }
	look() // the first look only takes the skew
	for range 10 {
		wall, boot = wall.Add(time.Second+400*time.Millisecond), boot+time.Second // slewed, 4 s in all
		look()
	}
	wall, boot = wall.Add(-2*time.Hour+time.Second), boot+time.Second // stepped back
	look()
	look()
	wall, boot = wall.Add(30*time.Minute), boot+30*time.Minute // suspended
	look()
	wall, boot = wall.Add(90*time.Second+time.Second), boot+time.Second // stepped forward
	look()
	want := []time.Duration{-2 * time.Hour, 90 * time.Second}
	if len(steps) != len(want) || steps[0] != want[0] || steps[1] != want[1] {
		t.Errorf("steps %v; want %v", steps, want)
	}
}

// TestShifted: a lease's times move by the step, so it keeps the time it
// had left; one obtained just now (after the step) stays.
func TestShifted(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	obtained := now.Add(2*time.Hour - 10*time.Minute) // before a step back of 2 h
	l := &dhcp.Lease{Addr: netip.MustParsePrefix("192.168.60.10/24"), Obtained: obtained, Renew: obtained.Add(30 * time.Minute),
		Rebind: obtained.Add(52 * time.Minute), Expiry: obtained.Add(time.Hour)}
	got := shifted(l, -2*time.Hour, now)
	if left := got.Renew.Sub(now); left != 20*time.Minute {
		t.Errorf("renewal %v after now once shifted; want the 20 min it had left", left)
	}
	if got.Expiry.Sub(got.Obtained) != time.Hour || l.Renew != obtained.Add(30*time.Minute) {
		t.Errorf("shifted %+v from %+v: want the lease's length kept and the original untouched", got, l)
	}
	fresh := &dhcp.Lease{Obtained: now.Add(-time.Second), Renew: now.Add(30 * time.Minute)}
	if shifted(fresh, -2*time.Hour, now) != fresh {
		t.Error("a lease obtained a second ago (after the step) was moved")
	}
	if shifted(nil, time.Hour, now) != nil {
		t.Error("no lease became one")
	}
}
