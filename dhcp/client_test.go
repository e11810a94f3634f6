package dhcp

import (
	"bytes"
	"context"
	"errors"
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
