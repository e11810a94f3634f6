package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mvlan/mvlan/internal/nstest"
)

// lan4 is the subnet of the DHCPv4 tests' servers (range .100-.150).
var lan4 = netip.MustParsePrefix("192.168.62.0/24")

// dnsmasqFlags serve lan4 with 2 min leases (dnsmasq's least), a router
// and two DNS servers, as authoritative: a failover partner's way.
var dnsmasqFlags = []string{"--dhcp-authoritative", "--dhcp-range=192.168.62.100,192.168.62.150,255.255.255.0,2m",
	"--dhcp-option=option:router,192.168.62.1", "--dhcp-option=option:dns-server,192.168.62.53,192.168.62.54",
	"--dhcp-option=option:domain-name,lan.example"}

// sandbox4 is a sandbox whose wire has addr (the server's) on wire0, and
// the client's Link on its eth0 (its own MAC: a server answers a client
// that has no address yet at that MAC).
func sandbox4(t *testing.T, addr string) (*nstest.Sandbox, Link) {
	t.Helper()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", addr, "dev", "wire0")
	return sb, linkOf(t, sb.Path, "eth0", Link{ClientID: ClientID("net", "c1"), Hostname: "c1", Subnet: lan4})
}

// linkOf is l on link name of namespace ns: its index and MAC.
func linkOf(t *testing.T, ns, name string, l Link) Link {
	t.Helper()
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			l.Netns, l.Ifindex, l.MAC = ns, ifi.Index, ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// acquireOn leases l's address and puts it on l's link, as the engine does.
func acquireOn(t *testing.T, sb *nstest.Sandbox, l Link, srv *nstest.Dnsmasq) Lease {
	t.Helper()
	lease, err := Acquire(context.Background(), l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.Log())
	}
	sb.Run(t, sb.Path, "ip", "addr", "add", lease.Addr.String(), "dev", "eth0")
	return lease
}

// wantFuzzed fails t unless lease's T1 and T2, what an exchange with a
// real server gave l, are fuzzed: each earlier than the server's (the
// stored answer's, as the client reads it) by up to fuzzShare of it.
func wantFuzzed(t *testing.T, what string, l Link, lease Lease) {
	t.Helper()
	var server Lease
	var err error
	if lease.Addr.Addr().Is4() {
		var m *dhcpv4.DHCPv4
		if m, err = dhcpv4.FromBytes(lease.ACK); err == nil {
			server, err = fromACK(m, l.ClientID, lease.Obtained)
		}
	} else {
		var m *dhcpv6.Message
		if m, err = dhcpv6.MessageFromBytes(lease.ACK); err == nil {
			server, err = fromReply(m, l, lease.Obtained)
		}
	}
	if err != nil {
		t.Fatalf("%s: the server's answer: %v", what, err)
	}
	for _, x := range []struct {
		name        string
		got, server time.Time
	}{{"T1", lease.Renew, server.Renew}, {"T2", lease.Rebind, server.Rebind}} {
		d, early := x.server.Sub(lease.Obtained), x.server.Sub(x.got)
		if early <= 0 || early > time.Duration(fuzzShare*float64(d)) {
			t.Errorf("%s: %s %v after the start, the server's %v: want up to %v%% earlier", what, x.name, x.got.Sub(lease.Obtained), d, fuzzShare*100)
		}
	}
}

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

// TestRelease: a DHCPRELEASE frees the binding in the server's lease
// file whether or not the leased address is on the link: unicast from
// that address to the server when it is (RFC 2131 4.4.6), broadcast from
// 0.0.0.0 when it is not (an ACK refused as outside the network's subnet,
// a lease not applied), with the address in ciaddr either way.
func TestRelease(t *testing.T) {
	for _, tc := range []struct {
		name     string
		onLink   bool
		src, dst string // "" is the leased address
	}{
		{"address on the link", true, "", "192.168.62.1"},
		{"address not on the link", false, "0.0.0.0", "255.255.255.255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, l := sandbox4(t, "192.168.62.1/24")
			srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)
			lease, err := Acquire(context.Background(), l)
			if err != nil {
				t.Fatalf("acquire: %v\n%s", err, srv.Log())
			}
			addr := lease.Addr.Addr()
			if tc.onLink {
				sb.Run(t, sb.Path, "ip", "addr", "add", lease.Addr.String(), "dev", "eth0")
			}
			if err := srv.WaitLease(addr, true, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			wire := nstest.NewCapture(t, sb.WirePath, "wire0")
			if err := Release(context.Background(), l, lease); err != nil {
				t.Fatalf("release: %v", err)
			}
			if err := srv.WaitLease(addr, false, 2*time.Second); err != nil {
				t.Error(err)
			}
			var src, dst netip.Addr
			var m *dhcpv4.DHCPv4
			if _, err := wire.Wait(time.Second, func(f []byte) bool { src, dst, m = dhcpFrame(f); return m != nil }); err != nil {
				t.Fatalf("no DHCPRELEASE on the wire: %v", err)
			}
			want := tc.src
			if want == "" {
				want = addr.String()
			}
			if src.String() != want || dst.String() != tc.dst || !m.ClientIPAddr.Equal(net.IP(addr.AsSlice())) || m.MessageType() != dhcpv4.MessageTypeRelease {
				t.Errorf("sent %s from %s to %s, ciaddr %s; want a DHCPRELEASE from %s to %s, ciaddr %s", m.MessageType(), src, dst, m.ClientIPAddr, want, tc.dst, addr)
			}
		})
	}
}

// dhcpFrame is the IPv4 source and destination and the DHCP message of
// an Ethernet frame to UDP port 67; nil if it is none.
func dhcpFrame(f []byte) (src, dst netip.Addr, m *dhcpv4.DHCPv4) {
	if len(f) < 14+20+8 || f[12] != 0x08 || f[13] != 0x00 || f[14+9] != 17 {
		return src, dst, nil
	}
	ihl := int(f[14]&0x0f) * 4
	if len(f) < 14+ihl+8 || f[14+ihl+2] != 0 || f[14+ihl+3] != 67 {
		return src, dst, nil
	}
	src, _ = netip.AddrFromSlice(f[14+12 : 14+16])
	dst, _ = netip.AddrFromSlice(f[14+16 : 14+20])
	m, err := dhcpv4.FromBytes(f[14+ihl+8:])
	if err != nil {
		return src, dst, nil
	}
	return src, dst, m
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

// TestWindow: an exchange waits for the sum of the client's doubling
// waits (2+4+8 s for DHCPv4, 1+2+4 s for DHCPv6), or until ctx's
// deadline when that is sooner.
func TestWindow(t *testing.T) {
	soon, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	past, cancel2 := context.WithTimeout(context.Background(), -time.Second)
	defer cancel2()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		first time.Duration
		tries int
		want  time.Duration
	}{
		{"DHCPv4", context.Background(), timeout, retry, 14 * time.Second},
		{"DHCPv6", context.Background(), timeout6, retry, 7 * time.Second},
		{"DHCPv6 Release", context.Background(), timeout6, 1, time.Second},
		{"deadline first", soon, timeout, retry, 8 * time.Second},
		{"deadline past", past, timeout, retry, 0},
	} {
		if got := window(tc.ctx, tc.first, tc.tries); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNoAnswer: with no server on the wire, Acquire gives up at ctx's
// deadline with ErrNoAnswer, and says how long it waited.
func TestNoAnswer(t *testing.T) {
	_, l := sandbox4(t, "192.168.62.1/24")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := Acquire(ctx, l)
	if !errors.Is(err, ErrNoAnswer) || !strings.HasSuffix(err.Error(), "no DHCP server answered to DHCPDISCOVER within 1.5s") {
		t.Errorf("acquire with no server: %v, want ErrNoAnswer to DHCPDISCOVER within 1.5s", err)
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

// TestRefusedRouters: an offer of any router the offer names is refused
// (the second too), one of another address is not.
func TestRefusedRouters(t *testing.T) {
	r1, r2, a := netip.MustParseAddr("192.168.62.1"), netip.MustParseAddr("192.168.62.2"), netip.MustParseAddr("192.168.62.50")
	for _, tc := range []struct {
		addr netip.Addr
		ok   bool
	}{{r1, false}, {r2, false}, {a, true}} {
		err := Link{}.refused("192.168.62.254", "offered", tc.addr, r1, r2)
		if (err == nil) != tc.ok || !tc.ok && !strings.Contains(err.Error(), "the router it names itself") {
			t.Errorf("offer of %s with routers %s, %s: %v; want ok %v", tc.addr, r1, r2, err, tc.ok)
		}
	}
}

// refuse is a Link.Refuse that names addrs as whose.
func refuse(whose string, addrs ...string) func(netip.Addr) string {
	return func(a netip.Addr) string {
		if slices.Contains(addrs, a.String()) {
			return whose
		}
		return ""
	}
}

// TestAcquireRefused: an offer of an address the link must refuse (the
// host shim's) is refused before it is requested: the server binds
// nothing.
func TestAcquireRefused(t *testing.T) {
	sb, l := sandbox4(t, "192.168.62.1/24")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range=192.168.62.100,192.168.62.100,255.255.255.0,2m")
	l.Refuse = refuse("the address of the network's host shim", "192.168.62.100")
	_, err := Acquire(context.Background(), l)
	if err == nil || !strings.Contains(err.Error(), "offered 192.168.62.100, the address of the network's host shim") {
		t.Fatalf("acquire of the shim's address: %v; want it refused, naming it\n%s", err, srv.Log())
	}
	if _, ok := srv.Lease(netip.MustParseAddr("192.168.62.100")); ok {
		t.Fatalf("the server bound the refused address\n%s", srv.Log())
	}
}

// TestDeclineMessage: a DHCPDECLINE (RFC 2131 table 5) names the address
// (option 50) and the server (option 54), carries the client-id, and has
// no ciaddr: the client never had the address.
func TestDeclineMessage(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:66:00:10")
	l := Link{MAC: mac, ClientID: []byte{1, 2, 3}}
	lease := Lease{Addr: netip.MustParsePrefix("192.168.66.10/24"), Server: netip.MustParseAddr("192.168.66.254")}
	m, err := declineMessage(l, lease)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageType() != dhcpv4.MessageTypeDecline {
		t.Errorf("type %v, want DHCPDECLINE", m.MessageType())
	}
	if got := m.RequestedIPAddress(); !got.Equal(net.ParseIP("192.168.66.10")) {
		t.Errorf("requested address (50) %v, want 192.168.66.10", got)
	}
	if got := m.ServerIdentifier(); !got.Equal(net.ParseIP("192.168.66.254")) {
		t.Errorf("server identifier (54) %v, want 192.168.66.254", got)
	}
	if !m.ClientIPAddr.IsUnspecified() || !bytes.Equal(m.ClientHWAddr, mac) {
		t.Errorf("ciaddr %v, chaddr %v; want 0.0.0.0, %v", m.ClientIPAddr, m.ClientHWAddr, mac)
	}
	if got := m.Options.Get(dhcpv4.OptionClientIdentifier); !bytes.Equal(got, l.ClientID) {
		t.Errorf("client-id % x, want % x", got, l.ClientID)
	}
}
