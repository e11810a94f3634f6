package engine

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mvlan/mvlan/dhcp"
)

// TestNextTry: a bound lease waits for T1; past T1 the first try is at
// once and a failed one waits half the time left to T2 (at least
// retryFloor: RFC 2131's 60 s, 1/32 of a shorter lease, 2 s at least);
// at T2 the first rebinding try goes at once, whenever the last renewal
// failed, and a failed one waits half the time left to the expiry; at the
// expiry at once (the address goes); an expired lease asks every
// retryExpired, at once after a DHCPNAK or when it has not asked since
// it expired (an agent that was down past the expiry), and after more
// NAKs in a row 1 s, 2 s, 4 s... later, up to retryExpired; each of these
// waits moved by the try's RetryFuzz share of retryFuzz.
func TestNextTry(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l := dhcp.Lease{State: dhcp.Bound, Obtained: t0, Renew: t0.Add(60 * time.Second), Rebind: t0.Add(105 * time.Second), Expiry: t0.Add(120 * time.Second)}
	failed := func(st dhcp.State, at time.Duration) dhcp.Lease {
		f := l
		f.State, f.Err, f.LastTry = st, "no answer", t0.Add(at)
		return f
	}
	hour := dhcp.Lease{State: dhcp.Renewing, Err: "no answer", Obtained: t0, Renew: t0.Add(30 * time.Minute), Rebind: t0.Add(52 * time.Minute), Expiry: t0.Add(time.Hour),
		LastTry: t0.Add(51 * time.Minute)}
	short := dhcp.Lease{State: dhcp.Renewing, Err: "no answer", Obtained: t0, Renew: t0.Add(2 * time.Second), Rebind: t0.Add(4 * time.Second), Expiry: t0.Add(6 * time.Second),
		LastTry: t0.Add(3 * time.Second)}
	refused := func(n int, at time.Duration) dhcp.Lease {
		f := failed(dhcp.Expired, at)
		f.Refused = n
		return f
	}
	fuzzed := func(l dhcp.Lease, f float64) dhcp.Lease {
		l.RetryFuzz = f
		return l
	}
	for _, tc := range []struct {
		name string
		l    dhcp.Lease
		at   time.Duration
		want time.Duration
	}{
		{"bound", l, 10 * time.Second, 50 * time.Second},
		{"at T1", l, 60 * time.Second, 0},
		{"renewal failed", failed(dhcp.Renewing, 60*time.Second), 61 * time.Second, 21*time.Second + 500*time.Millisecond},
		{"near T2", failed(dhcp.Renewing, 104*time.Second), 104 * time.Second, 3750 * time.Millisecond}, // 1/32 of the lease
		{"near T2 of an hour's lease", hour, 51 * time.Minute, time.Minute},                             // RFC 2131 4.4.5
		{"near T2 of a 6 s lease", short, 3 * time.Second, 2 * time.Second},
		{"at T2 after a failed renewal", failed(dhcp.Renewing, 104*time.Second), 105 * time.Second, 0},
		{"past T2 after a failed renewal", failed(dhcp.Renewing, 90*time.Second), 106 * time.Second, 0},
		{"rebinding failed", failed(dhcp.Rebinding, 106*time.Second), 106 * time.Second, 7 * time.Second},
		{"at the expiry", failed(dhcp.Rebinding, 118*time.Second), 120 * time.Second, 0},
		{"expired", failed(dhcp.Expired, 121*time.Second), 125 * time.Second, retryExpired - 4*time.Second},
		{"expired, not asked since", func() dhcp.Lease { f := failed(dhcp.Expired, 0); f.LastTry = time.Time{}; return f }(), 125 * time.Second, 0},
		{"after a NAK", refused(1, 121*time.Second), 121 * time.Second, 0},
		{"after 2 NAKs in a row", refused(2, 121*time.Second), 121*time.Second + 300*time.Millisecond, 700 * time.Millisecond},
		{"after 4 NAKs in a row", refused(4, 121*time.Second), 122 * time.Second, 3 * time.Second},
		{"after 9 NAKs in a row", refused(9, 121*time.Second), 121 * time.Second, retryExpired},
		{"expired, fuzzed earliest", fuzzed(failed(dhcp.Expired, 121*time.Second), -1), 125 * time.Second, 5 * time.Second},
		{"expired, fuzzed latest", fuzzed(failed(dhcp.Expired, 121*time.Second), 1), 125 * time.Second, 7 * time.Second},
		{"after 4 NAKs, fuzzed", fuzzed(refused(4, 121*time.Second), 0.5), 122 * time.Second, 3*time.Second + 200*time.Millisecond},
		{"after a NAK, fuzzed", fuzzed(refused(1, 121*time.Second), 1), 121 * time.Second, 0},
		{"renewal failed, not fuzzed", fuzzed(failed(dhcp.Renewing, 60*time.Second), 1), 61 * time.Second, 21*time.Second + 500*time.Millisecond},
	} {
		if got := nextTry(tc.l, t0.Add(tc.at)); got != tc.want && !(tc.want == 0 && got < 0) {
			t.Errorf("%s: next try in %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTryLimit: a renewal's try ends at T2 (then any server may answer)
// and a rebinding's at the expiry (then the address goes), each within
// acquireTimeout; asking anew for an expired lease takes acquireTimeout.
func TestTryLimit(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	l := dhcp.Lease{State: dhcp.Bound, Renew: t0.Add(60 * time.Second), Rebind: t0.Add(105 * time.Second), Expiry: t0.Add(120 * time.Second)}
	expired := l
	expired.State = dhcp.Expired
	for _, tc := range []struct {
		name string
		l    dhcp.Lease
		at   time.Duration
		want time.Duration
	}{
		{"renewing", l, 60 * time.Second, acquireTimeout},
		{"renewing near T2", l, 103 * time.Second, 2 * time.Second},
		{"rebinding", l, 105 * time.Second, acquireTimeout},
		{"rebinding near the expiry", l, 117 * time.Second, 3 * time.Second},
		{"expired", expired, 200 * time.Second, acquireTimeout},
	} {
		if got := tryLimit(tc.l, t0.Add(tc.at)); got != tc.want {
			t.Errorf("%s: limit %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTableEntryLeases: an endpoint's datapath row holds its addresses but
// those of its expired leases, DHCPv4 and DHCPv6 alike (the record keeps
// them); a static endpoint's, all of them.
func TestTableEntryLeases(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("192.168.60.120/24"), netip.MustParsePrefix("fd00:60::15/64")
	lease := func(p netip.Prefix, st dhcp.State) *dhcp.Lease { return &dhcp.Lease{State: st, Addr: p} }
	for _, tc := range []struct {
		name   string
		l4, l6 *dhcp.Lease
		want   []netip.Prefix
	}{
		{"static", nil, nil, []netip.Prefix{v4, v6}},
		{"bound and rebinding", lease(v4, dhcp.Bound), lease(v6, dhcp.Rebinding), []netip.Prefix{v4, v6}},
		{"DHCPv4 expired", lease(v4, dhcp.Expired), lease(v6, dhcp.Bound), []netip.Prefix{v6}},
		{"DHCPv6 expired", lease(v4, dhcp.Renewing), lease(v6, dhcp.Expired), []netip.Prefix{v4}},
		{"both expired", lease(v4, dhcp.Expired), lease(v6, dhcp.Expired), nil},
	} {
		e := endpoint{Addrs: []netip.Prefix{v4, v6}, Lease: tc.l4, Lease6: tc.l6}
		var got []netip.Prefix
		for _, ip := range tableEntry(&network{}, e).IPs {
			got = append(got, netip.PrefixFrom(ip, map[bool]int{true: 24, false: 64}[ip.Is4()]))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: row has %v, want %v", tc.name, got, tc.want)
		}
		if len(e.Addrs) != 2 {
			t.Errorf("%s: the endpoint's addresses changed: %v", tc.name, e.Addrs)
		}
	}
}

// TestRetryWait: after refusals in a row an expired lease asks at once,
// then 1 s, 2 s, 4 s, 8 s later, then every retryExpired, however many
// (no overflow); after no answer, every retryExpired.
func TestRetryWait(t *testing.T) {
	for refused, want := range map[int]time.Duration{0: retryExpired, 1: 0, 2: time.Second, 3: 2 * time.Second,
		4: 4 * time.Second, 5: 8 * time.Second, 6: retryExpired, 17: retryExpired, 64: retryExpired, 1 << 40: retryExpired} {
		if got := retryWait(refused); got != want {
			t.Errorf("after %d refusals: %v, want %v", refused, got, want)
		}
	}
}

// TestFuzzWait: a retry's wait moves by up to retryFuzz of itself either
// way, never more (a share out of [-1, 1] counts as its bound), and a
// wait of 0 (at once) stays 0.
func TestFuzzWait(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		f    float64
		want time.Duration
	}{
		{retryExpired, 0, retryExpired},
		{retryExpired, -1, 9 * time.Second},
		{retryExpired, 1, 11 * time.Second},
		{retryExpired, 0.25, 10*time.Second + 250*time.Millisecond},
		{retryExpired, -7, 9 * time.Second},
		{retryExpired, 7, 11 * time.Second},
		{2 * time.Second, -0.5, 1900 * time.Millisecond},
		{0, 1, 0},
	} {
		if got := fuzzWait(tc.d, tc.f); got != tc.want {
			t.Errorf("%v fuzzed by %v: %v, want %v", tc.d, tc.f, got, tc.want)
		}
	}
	for range 1000 {
		f := randFuzz()
		if got := fuzzWait(retryExpired, f); f < -1 || f > 1 || got < 9*time.Second || got > 11*time.Second {
			t.Fatalf("random share %v: %v, want 9 s to 11 s", f, got)
		}
	}
}
