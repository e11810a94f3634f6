package dhcp

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCPv6Client: the client against a real server (dnsmasq) on a veth:
// Solicit..Reply gives an address of the range with the server's times, a
// Renew extends it, Release removes it from the server's lease file, the
// same DUID gets the same address back, another DUID another address, and
// an advertised address outside the subnet is refused.
func TestDHCPv6Client(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::1/64", "dev", "wire0", "nodad")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range=fd00:60::10,fd00:60::20,64,2m")
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Hostname: "c1", Subnet: netip.MustParsePrefix("fd00:60::/64")})
	ctx := context.Background()
	lease, err := Acquire6(ctx, l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.Log())
	}
	t.Logf("lease %s renew %v rebind %v expiry %v", lease.Addr, lease.Renew.Sub(lease.Obtained), lease.Rebind.Sub(lease.Obtained), lease.Expiry.Sub(lease.Obtained))
	if lease.Addr.Bits() != 64 || !netip.MustParsePrefix("fd00:60::/64").Contains(lease.Addr.Addr()) {
		t.Fatalf("lease %s, want an address of fd00:60::10-20 /64", lease.Addr)
	}
	wantFuzzed(t, "acquired", l, lease)
	if err := srv.WaitLease(lease.Addr.Addr(), true, 2*time.Second); err != nil {
		t.Fatalf("the server's lease file has no %s: %v", lease.Addr, err)
	}
	time.Sleep(1100 * time.Millisecond)
	renewed, err := Renew6(ctx, l, lease)
	if err != nil || renewed.Addr != lease.Addr || !renewed.Expiry.After(lease.Expiry) {
		t.Fatalf("renew: %v, %s until %v (was until %v)", err, renewed.Addr, renewed.Expiry, lease.Expiry)
	}
	wantFuzzed(t, "renewed", l, renewed)
	if err := Release6(ctx, l, renewed); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := srv.WaitLease(lease.Addr.Addr(), false, 2*time.Second); err != nil {
		t.Fatalf("%s still in the server's lease file after Release: %v", lease.Addr, err)
	}
	again, err := Acquire6(ctx, l)
	if err != nil || again.Addr != lease.Addr {
		t.Fatalf("acquire again: %v, %s, want %s back", err, again.Addr, lease.Addr)
	}
	other := l
	other.ClientID = DUID6("net", "c2")
	o, err := Acquire6(ctx, other)
	if err != nil || o.Addr == lease.Addr {
		t.Fatalf("another DUID: %v, %s (c1 has %s)", err, o.Addr, lease.Addr)
	}
	narrow := l
	narrow.ClientID, narrow.Subnet = DUID6("net", "c3"), netip.MustParsePrefix("fd00:61::/64")
	if _, err := Acquire6(ctx, narrow); err == nil || !strings.Contains(err.Error(), "outside the network's IPv6 --subnet fd00:61::/64") {
		t.Fatalf("acquire outside the subnet: %v", err)
	}
	if _, err := Renew6(ctx, other, Lease{Addr: netip.MustParsePrefix("fd00:60::99/64"), ClientID: other.ClientID, ACK: o.ACK,
		Renew: time.Now(), Rebind: time.Now().Add(time.Minute), Expiry: time.Now().Add(time.Hour)}); !errors.Is(err, ErrNAK) {
		t.Fatalf("renew of an address the server never gave: %v, want ErrNAK", err)
	}
}

// TestRebind6OtherServer: as TestRebindOtherServer for DHCPv6. The
// lease's server (dnsmasq, DUID 1) stops and a partner (another address,
// DUID 2, its own lease file) serves the prefix. Renewing (a Renew to the
// lease's server, T1..T2) gets no answer; rebinding (a Rebind to any,
// after T2) gets the partner's Reply: the same address, the partner's
// DUID as the lease's server, and the partner's lease file has it.
func TestRebind6OtherServer(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::1/64", "dev", "wire0", "nodad")
	flags := func(duid string) []string {
		return []string{"--dhcp-authoritative", "--dhcp-range=fd00:60::10,fd00:60::20,64,2m", "--dhcp-duid=" + duid}
	}
	first := nstest.StartDnsmasq(t, sb.WirePath, "wire0", flags("1,01")...)
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:60::/64")})
	lease, err := Acquire6(context.Background(), l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, first.Log())
	}
	first.Stop()
	sb.Run(t, sb.WirePath, "ip", "addr", "del", "fd00:60::1/64", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::2/64", "dev", "wire0", "nodad")
	partner := nstest.StartDnsmasq(t, sb.WirePath, "wire0", flags("1,02")...)

	now := time.Now()
	renewing := lease
	renewing.Renew, renewing.Rebind = now.Add(-time.Second), now.Add(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Renew6(ctx, l, renewing); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("renewing with the lease's server gone: %v, want ErrNoAnswer", err)
	}
	rebinding := lease
	rebinding.Renew, rebinding.Rebind = now.Add(-time.Minute), now.Add(-time.Second)
	got, err := Renew6(context.Background(), l, rebinding)
	if err != nil {
		t.Fatalf("rebinding with the partner there: %v\n%s", err, partner.Log())
	}
	before, _ := dhcpv6.MessageFromBytes(lease.ACK)
	after, _ := dhcpv6.MessageFromBytes(got.ACK)
	if got.Addr != lease.Addr || !got.Expiry.After(lease.Expiry) || after.Options.ServerID().Equal(before.Options.ServerID()) {
		t.Errorf("rebound: %s until %v from %v; want %s after %v from another server than %v",
			got.Addr, got.Expiry, after.Options.ServerID(), lease.Addr, lease.Expiry, before.Options.ServerID())
	}
	if err := partner.WaitLease(lease.Addr.Addr(), true, 2*time.Second); err != nil {
		t.Error(err)
	}
}

// TestRelease6TakesNoSlot: with every exchange slot taken (exchanges
// waiting for a server that does not answer), a removal's DHCPv6 Release
// is still sent at once, as a DHCPRELEASE is (TestFollowUpsTakeNoSlot):
// the server drops the lease.
func TestRelease6TakesNoSlot(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:61::1/64", "dev", "wire0", "nodad")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range=fd00:61::10,fd00:61::20,64,2m")
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Hostname: "c1", Subnet: netip.MustParsePrefix("fd00:61::/64")})
	lease, err := Acquire6(context.Background(), l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.Log())
	}
	for range maxExchanges {
		free, err := takeSlot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer free()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := Release6(ctx, l, lease); err != nil {
		t.Fatalf("Release with every slot taken: %v; want it sent and answered", err)
	}
	if err := srv.WaitLease(lease.Addr.Addr(), false, 2*time.Second); err != nil {
		t.Errorf("%s still in the server's lease file after Release: %v", lease.Addr, err)
	}
}

// TestAcquire6IgnoresNoAddrsAvail: two servers on the link. dnsmasq, its
// one-address range taken by another client, answers the Solicit at once
// with an Advertise that has no address (NoAddrsAvail); a second server
// (nstest.DHCPv6Server) advertises one 300 ms later. The client ignores
// the first (RFC 8415 18.2.9) and leases the second's address.
func TestAcquire6IgnoresNoAddrsAvail(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := sb.Netns(t, "h")
	sb.Run(t, sb.WirePath, "ip", "link", "add", "link", "wire0", "name", "h0", "netns", filepath.Base(h), "type", "macvlan", "mode", "bridge")
	sb.Run(t, h, "ip", "addr", "add", "fd00:72::99/64", "dev", "h0", "nodad")
	sb.Run(t, h, "ip", "link", "set", "h0", "up")
	full := nstest.StartDnsmasq(t, h, "h0", "--dhcp-authoritative", "--dhcp-range=fd00:72::50,fd00:72::50,64,2m")
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:72::/64")})
	other := l
	other.ClientID = DUID6("net", "c2")
	if o, err := Acquire6(context.Background(), other); err != nil || o.Addr.Addr() != netip.MustParseAddr("fd00:72::50") {
		t.Fatalf("another client: %v, %s; want fd00:72::50, the range's only address\n%s", err, o.Addr, full.Log())
	}
	srv := nstest.StartDHCPv6Server(t, sb.WirePath, "wire0", netip.MustParsePrefix("fd00:72::1/64"), time.Minute)
	srv.Slow(300 * time.Millisecond)
	lease, err := Acquire6(context.Background(), l)
	if err != nil || lease.Addr != netip.MustParsePrefix("fd00:72::2/64") {
		t.Fatalf("acquire with a full server answering first: %v, %s; want fd00:72::2/64\n%s", err, lease.Addr, full.Log())
	}
	if !strings.Contains(full.Log(), "no addresses available") {
		t.Errorf("dnsmasq did not answer NoAddrsAvail:\n%s", full.Log())
	}
	// The full server alone: its answer is the error, after advertiseGrace
	// (1 s), not after the Solicit's retransmissions (7 s), which would
	// hold an exchange slot as long.
	srv.Quiet(true)
	third := l
	third.ClientID = DUID6("net", "c3")
	began := time.Now()
	if _, err := Acquire6(context.Background(), third); err == nil || !strings.Contains(err.Error(), "NoAddrsAvail") ||
		!strings.Contains(err.Error(), "no other server advertised an address") {
		t.Fatalf("acquire with only a full server: %v; want its NoAddrsAvail", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("acquire with only a full server failed after %v; want it about advertiseGrace (%v) after the answer", took, advertiseGrace)
	}
}
