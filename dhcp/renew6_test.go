package dhcp

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// forgetful starts dnsmasq serving DHCPv6 range (FIRST,LAST) on the
// sandbox's wire with a fixed DUID, and returns it with restart, which
// starts it again with an empty lease file: a server that lost its
// bindings (its DUID, given, is the same).
func forgetful(t *testing.T, sb *nstest.Sandbox, first, last string) (srv *nstest.Dnsmasq, restart func()) {
	t.Helper()
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::1/64", "dev", "wire0", "nodad")
	srv = nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range="+first+","+last+",64,2m", "--dhcp-duid=1,01")
	return srv, func() {
		srv.Stop()
		if err := os.WriteFile(srv.Leases, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		srv.Start()
	}
}

// renewing is lease between T1 and T2 now; with rebinding, past T2.
func renewing(lease Lease, rebinding bool) Lease {
	now := time.Now()
	lease.Renew, lease.Rebind = now.Add(-time.Second), now.Add(time.Minute)
	if rebinding {
		lease.Renew, lease.Rebind = now.Add(-time.Minute), now.Add(-time.Second)
	}
	return lease
}

// TestRenew6NoBinding: the lease's server (dnsmasq) restarts with its
// lease file lost. It answers the Renew with NoBinding ("lease not
// found"); the client then asks for the same address with a Request (RFC
// 8415 18.2.10.1) and keeps it: the same address with a later expiry, in
// the server's lease file again.
func TestRenew6NoBinding(t *testing.T) {
	sb := nstest.NewSandbox(t)
	srv, restart := forgetful(t, sb, "fd00:60::10", "fd00:60::20")
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:60::/64")})
	lease, err := Acquire6(context.Background(), l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.Log())
	}
	restart()
	time.Sleep(1100 * time.Millisecond) // a later expiry
	got, err := Renew6(context.Background(), l, renewing(lease, false))
	if err != nil || got.Addr != lease.Addr || !got.Expiry.After(lease.Expiry) {
		t.Fatalf("renew after the server lost its bindings: %v: %s until %v, want %s after %v\n%s", err, got.Addr, got.Expiry, lease.Addr, lease.Expiry, srv.Log())
	}
	wantFuzzed(t, "reinstated", l, got)
	if err := srv.WaitLease(lease.Addr.Addr(), true, 2*time.Second); err != nil {
		t.Error(err)
	}
	log := srv.Log()
	if i := strings.Index(log, "lease not found"); i < 0 || !strings.Contains(log[i:], "DHCPREQUEST") {
		t.Errorf("dnsmasq did not answer NoBinding (lease not found) and then a Request:\n%s", log)
	}
}

// TestRenew6NoBindingTaken: as TestRenew6NoBinding, but another client
// took the address (the range's only one) before the renewal: the
// Request to reinstate it is refused (NoAddrsAvail), and the renewal is
// ErrNAK, as the NoBinding was before.
func TestRenew6NoBindingTaken(t *testing.T) {
	sb := nstest.NewSandbox(t)
	srv, restart := forgetful(t, sb, "fd00:60::10", "fd00:60::10")
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:60::/64")})
	lease, err := Acquire6(context.Background(), l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.Log())
	}
	restart()
	other := l
	other.ClientID = DUID6("net", "c2")
	if o, err := Acquire6(context.Background(), other); err != nil || o.Addr != lease.Addr {
		t.Fatalf("another client: %v, %s; want %s, the range's only address", err, o.Addr, lease.Addr)
	}
	_, err = Renew6(context.Background(), l, renewing(lease, false))
	if !errors.Is(err, ErrNAK) || !strings.Contains(err.Error(), "NoBinding") || !strings.Contains(err.Error(), "request to reinstate") {
		t.Fatalf("renew of an address another client has now: %v; want ErrNAK, NoBinding and the refused Request\n%s", err, srv.Log())
	}
	t.Logf("refused: %v", err)
}

// TestRebind6NoBinding: a server that lost its bindings and will not give
// their addresses again (nstest.DHCPv6Server, Forget) answers a Rebind
// with NoBinding; the client's Request gets it another address, which
// the renewed lease has.
func TestRebind6NoBinding(t *testing.T) {
	sb := nstest.NewSandbox(t)
	srv := nstest.StartDHCPv6Server(t, sb.WirePath, "wire0", netip.MustParsePrefix("fd00:72::1/64"), time.Minute)
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:72::/64")})
	lease, err := Acquire6(context.Background(), l)
	if err != nil || lease.Addr != netip.MustParsePrefix("fd00:72::2/64") {
		t.Fatalf("acquire: %v, %s; want fd00:72::2/64", err, lease.Addr)
	}
	srv.Forget()
	got, err := Renew6(context.Background(), l, renewing(lease, true))
	if err != nil || got.Addr != netip.MustParsePrefix("fd00:72::3/64") {
		t.Fatalf("rebind after the server forgot the binding: %v, %s; want fd00:72::3/64", err, got.Addr)
	}
}

// TestRenew6Withdrawn: the server moves the client (nstest.DHCPv6Server,
// Move). A new address in the subnet is the renewed lease's. One outside
// it is refused: with the old address withdrawn (a valid lifetime of 0
// beside the new one, RFC 8415 18.3.4) the endpoint may use neither, the
// renewal is ErrNAK (the engine takes the address off and asks anew) and
// the refused address is given back (Release); with the old one not
// listed, the lease stays as it was, the refused one given back too. A server that lost the binding
// (NoBinding) and gives the Request to reinstate it a refused address
// (the shim's) withdrew the old one too.
func TestRenew6Withdrawn(t *testing.T) {
	for _, tc := range []struct {
		name, to         string
		withdraw, forget bool
		nak              bool
		why              string // in the error
	}{
		{"moved", "fd00:72::9", true, false, false, ""},
		{"moved out", "fd00:66::9", true, false, true, "withdrew fd00:72::2 (valid lifetime 0)"},
		{"given out", "fd00:66::9", false, false, false, "the lease stays as it was"},
		{"reinstated elsewhere", "fd00:72::3", false, true, true, "withdrew fd00:72::2 (NoBinding)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := nstest.NewSandbox(t)
			srv := nstest.StartDHCPv6Server(t, sb.WirePath, "wire0", netip.MustParsePrefix("fd00:72::1/64"), time.Minute)
			l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:72::/64"),
				Refuse: refuse("the address of the network's host shim", "fd00:72::3")})
			lease, err := Acquire6(context.Background(), l)
			if err != nil || lease.Addr != netip.MustParsePrefix("fd00:72::2/64") {
				t.Fatalf("acquire: %v, %s; want fd00:72::2/64", err, lease.Addr)
			}
			to := netip.MustParseAddr(tc.to)
			if tc.forget {
				srv.Forget() // its next free address is fd00:72::3
			} else {
				srv.Move(lease.Addr.Addr(), to, tc.withdraw)
			}
			got, err := Renew6(context.Background(), l, renewing(lease, false))
			if tc.why == "" {
				if err != nil || got.Addr.Addr() != to {
					t.Fatalf("renewal moved to %s: %v, %s", to, err, got.Addr)
				}
			} else if errors.Is(err, ErrNAK) != tc.nak || err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("renewal to %s: %v; want ErrNAK %v, %q", to, err, tc.nak, tc.why)
			}
			t.Logf("renewal: %v", err)
			want := []netip.Addr{}
			if tc.why != "" { // refused: given back
				want = append(want, to)
			}
			if r := srv.Released(); !slices.Equal(r, want) {
				t.Errorf("released %v; want %v", r, want)
			}
		})
	}
}
