package dhcp

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// udp6 is an IPv6 packet of UDP from sport to dport carrying payload.
func udp6(sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 48+len(payload))
	p[0] = 6 << 4
	binary.BigEndian.PutUint16(p[4:], uint16(8+len(payload)))
	p[6], p[7] = unix.IPPROTO_UDP, 64
	src := netip.MustParseAddr("fe80::1").As16()
	copy(p[8:], src[:])
	binary.BigEndian.PutUint16(p[40:], sport)
	binary.BigEndian.PutUint16(p[42:], dport)
	binary.BigEndian.PutUint16(p[44:], uint16(8+len(payload)))
	copy(p[48:], payload)
	return p
}

// TestServerUDP6: only UDP from 547 to 546 in a whole IPv6 packet is a
// server's message.
func TestServerUDP6(t *testing.T) {
	msg := []byte("reply")
	good := udp6(547, 546, msg)
	for _, tt := range []struct {
		name string
		p    []byte
		ok   bool
	}{
		{"server to client", good, true},
		{"trailer after the packet", append(append([]byte{}, good...), 0, 0, 0), true},
		{"from the client port", udp6(546, 546, msg), false},
		{"to the server port", udp6(547, 547, msg), false},
		{"cut short", good[:len(good)-1], false},
		{"no UDP header", good[:44], false},
		{"IPv4", func() []byte { p := append([]byte{}, good...); p[0] = 4 << 4; return p }(), false},
		{"an extension header", func() []byte { p := append([]byte{}, good...); p[6] = 0; return p }(), false},
		{"UDP length past the packet", func() []byte { p := append([]byte{}, good...); p[45] = 200; return p }(), false},
	} {
		got, src, ok := serverUDP6(tt.p)
		if ok != tt.ok || ok && (string(got) != "reply" || src != netip.MustParseAddr("fe80::1")) {
			t.Errorf("%s: %q from %s, %v; want ok %v", tt.name, got, src, ok, tt.ok)
		}
	}
}

// TestDHCPv6OnlyFromTheLink: a process in the client's namespace that
// sees each Solicit and Request go out and answers it at once, to the
// client's own address (through loopback), with an address of its
// choosing does not get it taken: the lease is the server's (dnsmasq on
// the wire). Without conn6 (replies read from the UDP socket) the
// client takes the forged Advertise and Reply.
func TestDHCPv6OnlyFromTheLink(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:63::1/64", "dev", "wire0", "nodad")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range=fd00:63::10,fd00:63::20,64,2m")
	l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1"), Subnet: netip.MustParsePrefix("fd00:63::/64")})
	forged := netip.MustParseAddr("fd00:63::99")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := forge6(t, ctx, sb.Path, l, forged)
	lease, err := Acquire6(ctx, l)
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, srv.Log())
	}
	if n := sent.Load(); n == 0 {
		t.Fatal("the forger answered nothing: the test proves nothing")
	}
	if lease.Addr.Addr() == forged || !netip.MustParsePrefix("fd00:63::/64").Contains(lease.Addr.Addr()) {
		t.Fatalf("lease %s; want the server's (fd00:63::10-20), not the forged %s", lease.Addr, forged)
	}
}

// forge6 answers, from inside namespace ns, every Solicit and Request l's
// link sends with an Advertise or Reply of addr, sent to the link's
// link-local address port 546 from a socket of ns, until ctx ends. It
// returns how many it sent.
func forge6(t *testing.T, ctx context.Context, ns string, l Link, addr netip.Addr) *atomic.Int32 {
	t.Helper()
	var raw *packet.Conn
	var out *net.UDPConn
	var dst *net.UDPAddr
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByIndex(l.Ifindex)
		if err != nil {
			return err
		}
		ll, err := linkLocal(ifi.Index)
		if err != nil {
			return err
		}
		dst = &net.UDPAddr{IP: ll.AsSlice(), Port: dhcpv6.DefaultClientPort, Zone: ifi.Name}
		if raw, err = packet.Listen(ifi, packet.Datagram, unix.ETH_P_ALL, nil); err != nil {
			return err
		}
		out, err = net.ListenUDP("udp6", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	context.AfterFunc(ctx, func() { raw.Close(); out.Close() })
	var sent atomic.Int32
	mods := []dhcpv6.Modifier{
		dhcpv6.WithServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0x99}}),
		dhcpv6.WithIAID(IAID),
		dhcpv6.WithIANA(dhcpv6.OptIAAddress{IPv6Addr: addr.AsSlice(), PreferredLifetime: time.Hour, ValidLifetime: 2 * time.Hour}),
	}
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, _, err := raw.ReadFrom(buf)
			if err != nil {
				return
			}
			m, ok := clientMessage(buf[:n])
			if !ok {
				continue
			}
			var answer *dhcpv6.Message
			switch m.MessageType {
			case dhcpv6.MessageTypeSolicit:
				answer, err = dhcpv6.NewAdvertiseFromSolicit(m, mods...)
			case dhcpv6.MessageTypeRequest:
				answer, err = dhcpv6.NewReplyFromMessage(m, mods...)
			default:
				continue
			}
			if err == nil {
				if _, err := out.WriteToUDP(answer.ToBytes(), dst); err == nil {
					sent.Add(1)
				}
			}
		}
	}()
	return &sent
}

// clientMessage is the DHCPv6 message of IPv6 packet p if it is UDP to
// the servers' port.
func clientMessage(p []byte) (*dhcpv6.Message, bool) {
	if len(p) < 48 || p[0]>>4 != 6 || p[6] != unix.IPPROTO_UDP || binary.BigEndian.Uint16(p[42:44]) != dhcpv6.DefaultServerPort {
		return nil, false
	}
	m, err := dhcpv6.MessageFromBytes(p[48:])
	return m, err == nil
}
