package dhcp

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

func ack(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(192, 168, 60, 120)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithServerIP(net.IPv4(192, 168, 60, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 60, 1))),
		dhcpv4.WithRouter(net.IPv4(192, 168, 60, 1)),
		dhcpv4.WithLeaseTime(120),
	}
	m, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFromACK: an answer becomes a lease with the times the server gave
// (T1 and T2 defaulting to 1/2 and 7/8 of the lease), and answers a
// client must not use are refused naming what is wrong.
func TestFromACK(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		mods       []dhcpv4.Modifier
		err        string
		renew, reb time.Duration
	}{
		{name: "defaults", renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "T1 and T2 given", mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(4 * time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(100 * time.Second))}, renew: 4 * time.Second, reb: 100 * time.Second},
		{name: "T1 past the lease", mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(500 * time.Second))}, renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "T1 at the expiry", mods: []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(120 * time.Second)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(120 * time.Second))}, renew: 60 * time.Second, reb: 105 * time.Second},
		{name: "no address", mods: []dhcpv4.Modifier{dhcpv4.WithYourIP(net.IPv4zero)}, err: "without a usable address"},
		{name: "no mask", mods: []dhcpv4.Modifier{func(d *dhcpv4.DHCPv4) { d.Options.Del(dhcpv4.OptionSubnetMask) }}, err: "subnet mask"},
		{name: "no lease time", mods: []dhcpv4.Modifier{func(d *dhcpv4.DHCPv4) { d.Options.Del(dhcpv4.OptionIPAddressLeaseTime) }}, err: "lease time"},
		{name: "router elsewhere", mods: []dhcpv4.Modifier{dhcpv4.WithRouter(net.IPv4(10, 0, 0, 1))}, err: "router 10.0.0.1 outside 192.168.60.0/24"},
		{name: "no server id", mods: []dhcpv4.Modifier{func(d *dhcpv4.DHCPv4) { d.Options.Del(dhcpv4.OptionServerIdentifier) }}, err: "server identifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := fromACK(ack(t, tc.mods...), ClientID("lan", "c1"), t0)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Addr != netip.MustParsePrefix("192.168.60.120/24") || l.Router != netip.MustParseAddr("192.168.60.1") ||
				l.Server != netip.MustParseAddr("192.168.60.1") || l.Expiry != t0.Add(120*time.Second) {
				t.Errorf("lease %+v", l)
			}
			if l.Renew.Sub(t0) != tc.renew || l.Rebind.Sub(t0) != tc.reb {
				t.Errorf("T1 %v T2 %v, want %v %v", l.Renew.Sub(t0), l.Rebind.Sub(t0), tc.renew, tc.reb)
			}
			for at, want := range map[time.Duration]State{0: Bound, tc.renew: Renewing, tc.reb: Rebinding, 120 * time.Second: Expired} {
				if got := l.StateAt(t0.Add(at)); got != want {
					t.Errorf("state at +%v: %v, want %v", at, got, want)
				}
			}
			back, err := FromAPI(*l.API())
			if err != nil || back.Addr != l.Addr || string(back.ClientID) != string(l.ClientID) || string(back.ACK) != string(l.ACK) {
				t.Errorf("through the API: %+v (%v)", back, err)
			}
		})
	}
}

// TestClientID: stable per network and name, different otherwise.
func TestClientID(t *testing.T) {
	a, b, c := ClientID("lan", "c1"), ClientID("lan", "c2"), ClientID("lan2", "c1")
	if string(a) != string(ClientID("lan", "c1")) || string(a) == string(b) || string(a) == string(c) || a[0] != 0 {
		t.Errorf("client ids %x %x %x", a, b, c)
	}
}

// TestDNSNames: the domain and search list of an answer are kept when
// they are plain DNS names (they go into resolv.conf) and dropped when not.
func TestDNSNames(t *testing.T) {
	for _, tc := range []struct {
		name, domain string
		search       []string
		wantDomain   string
		wantSearch   []string
	}{
		{name: "none"},
		{name: "domain", domain: "lan.example.", wantDomain: "lan.example"},
		{name: "search", search: []string{"a.example", "b.example"}, wantSearch: []string{"a.example", "b.example"}},
		{name: "newline dropped", domain: "evil\nnameserver 6.6.6.6", search: []string{"ok.example", "bad name"}, wantSearch: []string{"ok.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mods []dhcpv4.Modifier
			if tc.domain != "" {
				mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(tc.domain)))
			}
			if tc.search != nil {
				mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: tc.search})))
			}
			l, err := fromACK(ack(t, mods...), ClientID("lan", "c1"), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if l.Domain != tc.wantDomain || !slices.Equal(l.Search, tc.wantSearch) {
				t.Errorf("domain %q search %q, want %q %q", l.Domain, l.Search, tc.wantDomain, tc.wantSearch)
			}
			back, err := FromAPI(*l.API())
			if err != nil || back.Domain != l.Domain || !slices.Equal(back.Search, l.Search) {
				t.Errorf("through the API: %q %q (%v), want %q %q", back.Domain, back.Search, err, l.Domain, l.Search)
			}
		})
	}
}

// without takes options out of an answer.
func without(codes ...dhcpv4.OptionCode) dhcpv4.Modifier {
	return func(d *dhcpv4.DHCPv4) {
		for _, c := range codes {
			d.Options.Del(c)
		}
	}
}

// TestFromRenewal: a renewal's DHCPACK gives the lease its address and
// times; the subnet mask, router, DNS servers, domain, search list and
// server identifier it leaves out stay the renewed lease's (a router
// only while on the subnet), those it gives are taken.
func TestFromRenewal(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	oldDNS := dhcpv4.WithDNS(net.IPv4(192, 168, 60, 53))
	named := []dhcpv4.Modifier{oldDNS, dhcpv4.WithOption(dhcpv4.OptDomainName("old.example")),
		dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: []string{"s.example"}}))}
	old, err := fromACK(ack(t, named...), ClientID("lan", "c1"), t0.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	all := []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
		dhcpv4.OptionDomainName, dhcpv4.OptionDNSDomainSearchList, dhcpv4.OptionServerIdentifier}
	kept := "192.168.60.120/24 router 192.168.60.1 server 192.168.60.1 dns [192.168.60.53] old.example [s.example]"
	for _, tc := range []struct {
		name string
		mods []dhcpv4.Modifier
		want string // "" if err
		err  string
	}{
		{"everything again", append(slices.Clone(named), dhcpv4.WithNetmask(net.CIDRMask(23, 32)), dhcpv4.WithDNS(net.IPv4(192, 168, 60, 54)),
			dhcpv4.WithOption(dhcpv4.OptDomainName("new.example"))),
			"192.168.60.120/23 router 192.168.60.1 server 192.168.60.1 dns [192.168.60.54] new.example [s.example]", ""},
		{"no mask", append(slices.Clone(named), without(dhcpv4.OptionSubnetMask)), kept, ""},
		{"no router", append(slices.Clone(named), without(dhcpv4.OptionRouter)), kept, ""},
		{"no DNS, domain or search", nil, kept, ""},
		{"no server identifier", append(slices.Clone(named), without(dhcpv4.OptionServerIdentifier)), kept, ""},
		{"only address and times", []dhcpv4.Modifier{without(all...)}, kept, ""},
		{"another subnet, no router", []dhcpv4.Modifier{dhcpv4.WithYourIP(net.IPv4(192, 168, 61, 5)), without(dhcpv4.OptionRouter)},
			"192.168.61.5/24 router invalid IP server 192.168.60.1 dns [192.168.60.53] old.example [s.example]", ""},
		{"router elsewhere", []dhcpv4.Modifier{dhcpv4.WithRouter(net.IPv4(10, 0, 0, 1))}, "", "router 10.0.0.1 outside"},
		{"no lease time", []dhcpv4.Modifier{without(dhcpv4.OptionIPAddressLeaseTime)}, "", "lease time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := fromRenewal(ack(t, tc.mods...), old, t0)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprintf("%s router %s server %s dns %v %s %v", l.Addr, l.Router, l.Server, l.DNS, l.Domain, l.Search)
			if got != tc.want || l.Expiry != t0.Add(120*time.Second) || string(l.ClientID) != string(old.ClientID) {
				t.Errorf("renewed: %s until %v\nwant     %s until %v", got, l.Expiry, tc.want, t0.Add(120*time.Second))
			}
		})
	}
	if _, err := fromACK(ack(t, without(dhcpv4.OptionSubnetMask)), old.ClientID, t0); err == nil {
		t.Error("a new lease without a subnet mask was taken")
	}
}

// TestLeaseTimesWallClock: a lease's times carry no monotonic reading, so
// that they compare with now on the wall clock: Go's monotonic clock
// stops while the host is suspended, the server's lease does not.
func TestLeaseTimesWallClock(t *testing.T) {
	now := time.Now() // with a monotonic reading
	v4, err := fromACK(ack(t), ClientID("lan", "c1"), now)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := fromRenewal(ack(t), v4, now)
	if err != nil {
		t.Fatal(err)
	}
	v6, err := fromReply(reply6(t, nil), Link{ClientID: DUID6("lan", "c1")}, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]Lease{"DHCPv4": v4, "DHCPv4 renewal": renewed, "DHCPv6": v6} {
		for what, at := range map[string]time.Time{"obtained": l.Obtained, "T1": l.Renew, "T2": l.Rebind, "expiry": l.Expiry} {
			if at != at.Round(0) || !at.After(now.Add(-time.Second)) {
				t.Errorf("%s lease's %s %v: want a wall-clock time (no monotonic reading) at or after %v", name, what, at, now.Round(0))
			}
		}
	}
}

// TestFuzzed: T1 and T2 move earlier by the given shares of fuzzShare
// (RFC 2131 4.4.5's fuzz), never later, never to or before the lease's
// start, T2 never before T1, neither past the expiry; shares outside
// [0, 1] count as their bound. Random shares (a seeded source) keep to
// the same bounds.
func TestFuzzed(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	lease := func(t1, t2 time.Duration) Lease {
		return Lease{Obtained: t0, Renew: t0.Add(t1), Rebind: t0.Add(t2), Expiry: t0.Add(120 * time.Second)}
	}
	s := time.Second
	for _, tc := range []struct {
		name          string
		l             Lease
		u1, u2        float64
		renew, rebind time.Duration
	}{
		{"none", lease(60*s, 105*s), 0, 0, 60 * s, 105 * s},
		{"most", lease(60*s, 105*s), 1, 1, 54 * s, 94*s + 500*time.Millisecond},
		{"half and a quarter", lease(60*s, 105*s), 0.5, 0.25, 57 * s, 102*s + 375*time.Millisecond},
		{"shares out of range", lease(60*s, 105*s), -3, 7, 60 * s, 94*s + 500*time.Millisecond},
		{"T2 at T1 stays there", lease(60*s, 60*s), 0, 1, 60 * s, 60 * s},
		{"T2 near T1 not before it", lease(100*s, 105*s), 0.1, 1, 99 * s, 99 * s},
		{"a short lease", lease(3*s, 5*s+250*time.Millisecond), 1, 1, 2*s + 700*time.Millisecond, 4*s + 725*time.Millisecond},
	} {
		got := tc.l.fuzzed(tc.u1, tc.u2)
		if got.Renew.Sub(t0) != tc.renew || got.Rebind.Sub(t0) != tc.rebind || got.Expiry != tc.l.Expiry || got.Obtained != t0 {
			t.Errorf("%s: T1 %v T2 %v expiry %v, want %v %v %v", tc.name, got.Renew.Sub(t0), got.Rebind.Sub(t0), got.Expiry.Sub(t0), tc.renew, tc.rebind, tc.l.Expiry.Sub(t0))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		t1 := time.Duration(1 + r.Int64N(int64(120*s-1)))
		t2 := t1 + time.Duration(r.Int64N(int64(120*s-t1)))
		l := lease(t1, t2)
		got := l.fuzzed(r.Float64(), r.Float64())
		if got.Renew.After(l.Renew) || got.Renew.Before(t0.Add(t1*9/10)) || !got.Renew.After(t0) ||
			got.Rebind.After(l.Rebind) || got.Rebind.Before(got.Renew) || got.Rebind.Before(t0.Add(t2*9/10)) || !got.Rebind.Before(l.Expiry) {
			t.Fatalf("T1 %v T2 %v fuzzed to %v %v", t1, t2, got.Renew.Sub(t0), got.Rebind.Sub(t0))
		}
	}
}
