package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestRenewRequest: a renewal's DHCPREQUEST carries the address in ciaddr,
// neither a requested address nor a server identifier (which would make
// it a SELECTING one that only that server answers), the endpoint's MAC
// and client-id, and a transaction id of its own each time: not the one
// of the exchange that got the lease.
func TestRenewRequest(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	l := Link{MAC: mac, ClientID: ClientID("lan", "c1")}
	old, err := fromACK(ack(t), l.ClientID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := dhcpv4.FromBytes(old.ACK)
	seen := map[dhcpv4.TransactionID]bool{stored.TransactionID: true}
	for i := range 3 {
		req, err := renewRequest(l, old)
		if err != nil {
			t.Fatal(err)
		}
		if seen[req.TransactionID] {
			t.Errorf("request %d: xid %s used before", i, req.TransactionID)
		}
		seen[req.TransactionID] = true
		if !req.ClientIPAddr.Equal(net.IPv4(192, 168, 60, 120)) || req.ClientHWAddr.String() != mac.String() ||
			req.MessageType() != dhcpv4.MessageTypeRequest || string(req.Options.Get(dhcpv4.OptionClientIdentifier)) != string(l.ClientID) {
			t.Errorf("request %d: %s", i, req.Summary())
		}
		for _, o := range []dhcpv4.OptionCode{dhcpv4.OptionServerIdentifier, dhcpv4.OptionRequestedIPAddress} {
			if req.Options.Has(o) {
				t.Errorf("request %d carries %s", i, o)
			}
		}
	}
}

// TestRebindOtherServer: the server of a lease stops and its failover
// partner (another address, dnsmasq with --dhcp-authoritative) takes the
// subnet over. While renewing (T1..T2) the client takes an answer from the
// lease's server only; once rebinding (after T2) it takes the partner's
// DHCPACK: the same address, the partner as the lease's server, and the
// partner's lease file has the binding.
func TestRebindOtherServer(t *testing.T) {
	sb, l := sandbox4(t, "192.168.62.1/24")
	first := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)
	lease := acquireOn(t, sb, l, first)
	if lease.Server != netip.MustParseAddr("192.168.62.1") {
		t.Fatalf("lease from %s, want 192.168.62.1", lease.Server)
	}
	wantFuzzed(t, "acquired", l, lease)
	first.Stop()
	sb.Run(t, sb.WirePath, "ip", "addr", "del", "192.168.62.1/24", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.62.2/24", "dev", "wire0")
	partner := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)

	now := time.Now()
	renewing := lease
	renewing.Renew, renewing.Rebind = now.Add(-time.Second), now.Add(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if got, err := Renew(ctx, l, renewing); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("renewing with the lease's server gone: %v (lease from %s), want ErrNoAnswer", err, got.Server)
	}

	rebinding := lease
	rebinding.Renew, rebinding.Rebind = now.Add(-time.Minute), now.Add(-time.Second)
	got, err := Renew(context.Background(), l, rebinding)
	if err != nil {
		t.Fatalf("rebinding with the partner there: %v\n%s", err, partner.Log())
	}
	if got.Addr != lease.Addr || got.Server != netip.MustParseAddr("192.168.62.2") || !got.Expiry.After(lease.Expiry) {
		t.Errorf("rebound: %s from %s until %v; want %s from 192.168.62.2 after %v", got.Addr, got.Server, got.Expiry, lease.Addr, lease.Expiry)
	}
	wantFuzzed(t, "rebound", l, got)
	if err := partner.WaitLease(lease.Addr.Addr(), true, 2*time.Second); err != nil {
		t.Error(err)
	}
}

// TestRenewKeepsOptions: the lease's server restarts configured to give
// no subnet mask, router or DNS servers, and no domain (dnsmasq with empty
// options 1, 3 and 6: its renewal's DHCPACK has the address and times
// only). The renewed lease keeps the mask, router, DNS servers and domain
// it had, with the new expiry.
func TestRenewKeepsOptions(t *testing.T) {
	sb, l := sandbox4(t, "192.168.62.1/24")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)
	lease := acquireOn(t, sb, l, srv)
	srv.Stop()
	bare := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative",
		"--dhcp-range=192.168.62.100,192.168.62.150,255.255.255.0,2m", "--dhcp-option=1", "--dhcp-option=3", "--dhcp-option=6")
	time.Sleep(time.Second) // a later expiry
	renewing := lease
	renewing.Renew = time.Now()
	got, err := Renew(context.Background(), l, renewing)
	if err != nil {
		t.Fatalf("renew: %v\n%s", err, bare.Log())
	}
	if ack, _ := dhcpv4.FromBytes(got.ACK); ack == nil || ack.Options.Has(dhcpv4.OptionSubnetMask) || ack.Options.Has(dhcpv4.OptionRouter) {
		t.Fatalf("the renewal's DHCPACK has a subnet mask or router: %v", ack)
	}
	want := fmt.Sprintf("%s router %s dns %v domain %s", lease.Addr, lease.Router, lease.DNS, lease.Domain)
	if s := fmt.Sprintf("%s router %s dns %v domain %s", got.Addr, got.Router, got.DNS, got.Domain); s != want || !got.Expiry.After(lease.Expiry) {
		t.Errorf("renewed: %s until %v\nwant     %s after %v", s, got.Expiry, want, lease.Expiry)
	}
	if lease.Router != netip.MustParseAddr("192.168.62.1") || len(lease.DNS) != 2 || lease.Domain != "lan.example" {
		t.Errorf("first lease: router %s DNS %v domain %q, want dnsmasq's", lease.Router, lease.DNS, lease.Domain)
	}
}

// TestRenewedIn: a renewal (from T2 any server's) may not move the lease
// out of the network's subnet, nor to the host shim's address, in either
// family, nor to a router it names (any of them); without a subnet any
// other address goes.
func TestRenewedIn(t *testing.T) {
	for _, tc := range []struct {
		subnet, addr string
		ok           bool
	}{
		{"192.168.62.0/24", "192.168.62.120/24", true},
		{"192.168.62.0/24", "10.66.0.120/24", false},
		{"fd00:60::/64", "fd00:60::10/64", true},
		{"fd00:60::/64", "fd00:66::10/128", false},
		{"", "10.66.0.120/24", true},
		{"192.168.62.0/24", "192.168.62.2/24", false}, // the shim's
		{"", "192.168.62.2/24", false},
		{"fd00:60::/64", "fd00:60::2/64", false},
		{"192.168.62.0/24", "192.168.62.1/24", false}, // the router's
		{"192.168.62.0/24", "192.168.62.3/24", false}, // the ACK's second router
	} {
		l := Link{Refuse: refuse("the address of the network's host shim", "192.168.62.2", "fd00:60::2")}
		if tc.subnet != "" {
			l.Subnet = netip.MustParsePrefix(tc.subnet)
		}
		err := l.renewedIn(Lease{Addr: netip.MustParsePrefix(tc.addr), Router: netip.MustParseAddr("192.168.62.1")},
			netip.MustParseAddr("192.168.62.1"), netip.MustParseAddr("192.168.62.3"))
		if (err == nil) != tc.ok {
			t.Errorf("subnet %q, renewed %s: %v, want ok %v", tc.subnet, tc.addr, err, tc.ok)
		}
	}
}

// TestRenewUnicast: RENEWING (T1..T2) the DHCPREQUEST goes to the lease's
// server as unicast (RFC 2131 4.4.5, table 4): it reaches the server's
// link from the leased address to the server's, at the server's MAC, with
// the address in ciaddr, and dnsmasq renews the lease (a later expiry in
// its lease file too). When it cannot go unicast (another socket holds
// port 68 in the container's namespace) it is broadcast from 0.0.0.0, and
// so is it REBINDING (after T2): the lease is renewed either way.
func TestRenewUnicast(t *testing.T) {
	sb, l := sandbox4(t, "192.168.62.1/24")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)
	lease := acquireOn(t, sb, l, srv)
	addr, server := lease.Addr.Addr(), linkOf(t, sb.WirePath, "wire0", Link{}).MAC.String()
	const bcast, bcastMAC = "255.255.255.255", "ff:ff:ff:ff:ff:ff"
	for _, tc := range []struct {
		name                string
		rebinding, portUsed bool
		src, dst, dstMAC    string
	}{
		{"renewing", false, false, addr.String(), "192.168.62.1", server},
		{"renewing, port 68 taken", false, true, "0.0.0.0", bcast, bcastMAC},
		{"rebinding", true, false, "0.0.0.0", bcast, bcastMAC},
	} {
		release := func() {}
		if tc.portUsed {
			release = holdPort68(t, sb.Path)
		}
		time.Sleep(1100 * time.Millisecond) // a later expiry, in seconds
		now, before := time.Now(), leaseFileExpiry(t, srv, addr)
		old := lease
		old.Renew, old.Rebind = now.Add(-time.Second), now.Add(time.Minute)
		if tc.rebinding {
			old.Renew, old.Rebind = now.Add(-time.Minute), now.Add(-time.Second)
		}
		wire := nstest.NewCapture(t, sb.WirePath, "wire0")
		got, err := Renew(context.Background(), l, old)
		release()
		if err != nil || got.Addr != lease.Addr || !got.Expiry.After(lease.Expiry) {
			t.Fatalf("%s: %v: %s until %v, want %s after %v\n%s", tc.name, err, got.Addr, got.Expiry, lease.Addr, lease.Expiry, srv.Log())
		}
		if after := leaseFileExpiry(t, srv, addr); after <= before {
			t.Errorf("%s: dnsmasq's lease of %s expires at %d, as before the renewal", tc.name, addr, after)
		}
		src, dst, dstMAC := requestOf(t, wire, addr)
		if src != tc.src || dst != tc.dst || dstMAC != tc.dstMAC {
			t.Errorf("%s: DHCPREQUEST from %s to %s at %s, want from %s to %s at %s", tc.name, src, dst, dstMAC, tc.src, tc.dst, tc.dstMAC)
		}
		lease = got
	}
}

// requestOf is the source and destination IP and destination MAC of the
// first DHCPREQUEST with ciaddr addr that wire captures.
func requestOf(t *testing.T, wire *nstest.Capture, addr netip.Addr) (src, dst, dstMAC string) {
	t.Helper()
	f, err := wire.Wait(time.Second, func(f []byte) bool {
		_, _, m := dhcpFrame(f)
		return m != nil && m.MessageType() == dhcpv4.MessageTypeRequest && m.ClientIPAddr.Equal(net.IP(addr.AsSlice()))
	})
	if err != nil {
		t.Fatalf("no DHCPREQUEST of %s on the server's link: %v", addr, err)
	}
	s, d, _ := dhcpFrame(f)
	return s.String(), d.String(), net.HardwareAddr(f[:6]).String()
}

// leaseFileExpiry is the expiry (Unix seconds) of dnsmasq's lease of addr.
func leaseFileExpiry(t *testing.T, srv *nstest.Dnsmasq, addr netip.Addr) int64 {
	t.Helper()
	for _, f := range srv.Lines() {
		if len(f) >= 3 && f[2] == addr.String() {
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Fatalf("dnsmasq's lease file: %q: %v", f, err)
			}
			return n
		}
	}
	t.Fatalf("dnsmasq's lease file has no %s\n%s", addr, srv.Log())
	return 0
}

// holdPort68 binds UDP port 68 on every address of namespace ns, as a
// DHCP client of a container's own would, until the returned func.
func holdPort68(t *testing.T, ns string) func() {
	t.Helper()
	var pc net.PacketConn
	err := nstest.In(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", "0.0.0.0:68")
		return err
	})
	if err != nil {
		t.Fatalf("hold port 68: %v", err)
	}
	return func() { pc.Close() }
}

// TestRenewMovedRefused: the server moves the client's binding to an
// address the link refuses (nstest.DHCPServer, Move): the host shim's,
// or one outside the network's subnet (the server's router outside it
// too). The renewal is refused, the lease stays as it was, and the
// refused address is given back (DHCPRELEASE: the server holds no
// binding for the client any more), so that the next renewal has the old
// address bound again.
func TestRenewMovedRefused(t *testing.T) {
	for _, tc := range []struct{ to, why string }{
		{"192.168.62.50", "192.168.62.50, the address of the network's host shim"},
		{"10.66.0.9", "gave router 192.168.62.1 outside 10.66.0.0/24"},
	} {
		t.Run(tc.to, func(t *testing.T) {
			sb := nstest.NewSandbox(t)
			srv := nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.62.1/24"), time.Minute)
			l := linkOf(t, sb.Path, "eth0", Link{ClientID: ClientID("net", "c1"), Subnet: lan4,
				Refuse: refuse("the address of the network's host shim", "192.168.62.50")})
			lease, err := Acquire(context.Background(), l)
			if err != nil || lease.Addr != netip.MustParsePrefix("192.168.62.2/24") {
				t.Fatalf("acquire: %v, %s; want 192.168.62.2/24", err, lease.Addr)
			}
			sb.Run(t, sb.Path, "ip", "addr", "add", lease.Addr.String(), "dev", "eth0")
			mac := l.MAC.String()
			srv.Move(mac, netip.MustParseAddr(tc.to))
			got, err := Renew(context.Background(), l, renewing(lease, false))
			if err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("renewal moved to %s: %v (%s); want it refused: %s", tc.to, err, got.Addr, tc.why)
			}
			for deadline := time.Now().Add(time.Second); ; time.Sleep(20 * time.Millisecond) {
				a, ok := srv.Bound(mac)
				if !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the server still binds %s to the client; want the refused address released", a)
				}
			}
			if r := srv.Released(); len(r) != 1 || r[0].String() != tc.to {
				t.Errorf("DHCPRELEASEs of %v; want one, of %s", r, tc.to)
			}
			if got, err = Renew(context.Background(), l, renewing(lease, false)); err != nil || got.Addr != lease.Addr {
				t.Errorf("next renewal: %v, %s; want %s again", err, got.Addr, lease.Addr)
			}
		})
	}
}
