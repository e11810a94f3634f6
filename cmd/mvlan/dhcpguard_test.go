package main

import (
	"encoding/hex"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCPSpoofedClient: on a DHCP network served by dnsmasq, container 2
// (root in its namespace) speaks DHCP in container 1's name, with what it
// can hear of container 1's broadcasts (its MAC, client identifier and
// address): a DHCPRELEASE and a DHCPDECLINE of container 1's lease, and a
// DHCPREQUEST for a made-up client, which would take an address of the
// pool. The datapath drops all three on container 2's link (dhcp_guard
// moves by exactly 3) and dnsmasq keeps container 1's lease and makes no
// other; container 2's release of its own lease, sent after them from the
// same socket, reaches dnsmasq (its lease goes), so the three were sent
// where they would have worked.
func TestDHCPSpoofedClient(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	peer := sb.AddVeth(t, "eth1")
	srv := startDnsmasq(t, sb, peer)
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	srv.agent = e.a
	e.a.start()
	t.Cleanup(e.cleanup)
	e.a.ok("network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0", "lan")
	c1, c2 := e.name("1"), e.name("2")
	ep1, ep2 := e.runD(c1, "lan"), e.runD(c2, "lan")
	id1, addr1 := srv.clientOf(ep1), netip.MustParsePrefix(addrOf(ep1, false)).Addr()
	id2 := srv.clientOf(ep2)
	mac1, fake := nstest.MAC(t, ep1.MAC), nstest.MAC(t, "02:66:66:66:66:01")
	server := net.IPv4(192, 168, 60, 1)
	spoofs := []*dhcpv4.DHCPv4{
		dhcpMsg(t, dhcpv4.MessageTypeRelease, mac1, id1, dhcpv4.WithClientIP(addr1.AsSlice()), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server))),
		dhcpMsg(t, dhcpv4.MessageTypeDecline, mac1, id1, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(addr1.AsSlice())), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server))),
		dhcpMsg(t, dhcpv4.MessageTypeRequest, fake, append([]byte{1}, fake...), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 60, 140)))),
	}
	before := e.drops("lan", "dhcp_guard")
	conn := udpIn(t, c2, &net.UDPAddr{IP: server, Port: 67})
	for _, m := range spoofs {
		_, _ = conn.Write(m.ToBytes()) // dropped on the link: the error, if any, is ENOBUFS
	}
	own := dhcpMsg(t, dhcpv4.MessageTypeRelease, nstest.MAC(t, ep2.MAC), id2,
		dhcpv4.WithClientIP(netip.MustParsePrefix(addrOf(ep2, false)).Addr().AsSlice()), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)))
	if _, err := conn.Write(own.ToBytes()); err != nil {
		t.Fatalf("%s's release of its own lease: %v", c2, err)
	}
	srv.waitLease(ep2.MAC, 5*time.Second, c2+"'s release of its own lease (sent after the spoofed ones)", func(_ lease, ok bool) bool { return !ok })
	if l, ok := srv.lease(ep1.MAC); !ok || l.addr != addr1 {
		t.Errorf("%s's lease of %s: %+v (present %v) after %s's spoofed release and decline; want it kept", c1, addr1, l, ok, c2)
	}
	if _, ok := srv.lease(fake.String()); ok {
		t.Errorf("dnsmasq leased an address to %s, a client %s made up", fake, c2)
	}
	if got := e.waitDrops("lan", "dhcp_guard", before+3); got != before+3 {
		t.Errorf("dhcp_guard drops of lan went from %d to %d; want +3", before, got)
	}
}

// clientOf is the client identifier dnsmasq's lease of ep has (what a
// neighbour hears in its broadcast requests).
func (d *dnsmasq) clientOf(ep api.Endpoint) []byte {
	d.t.Helper()
	for _, f := range d.Lines() {
		if len(f) >= 5 && f[1] == ep.MAC {
			id, err := hex.DecodeString(strings.ReplaceAll(f[4], ":", ""))
			if err == nil && len(id) > 0 {
				return id
			}
		}
	}
	d.t.Fatalf("no client identifier in dnsmasq's lease of %s:\n%q", ep.MAC, d.Lines())
	return nil
}

// dhcpMsg is a DHCPv4 message of type typ from hw with client identifier
// id, and mods.
func dhcpMsg(t *testing.T, typ dhcpv4.MessageType, hw net.HardwareAddr, id []byte, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id))}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// udpIn is a UDP socket of namespace ns connected to to.
func udpIn(t *testing.T, ns string, to *net.UDPAddr) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := nstest.In(ns, func() (err error) {
		conn, err = net.DialUDP("udp4", nil, to)
		return err
	})
	if err != nil {
		t.Fatalf("udp socket in %s: %v", ns, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// drops is what mvlan stats counts as dropped for reason on network.
func (e *env) drops(network, reason string) uint64 {
	e.t.Helper()
	var st api.Stats
	if err := json.Unmarshal([]byte(e.a.ok("stats", "--format", "json")), &st); err != nil {
		e.t.Fatal(err)
	}
	for _, n := range st.Networks {
		if n.Network == network {
			return n.Drops[reason].Packets
		}
	}
	return 0
}

// waitDrops polls drops (at most 5 s) until it is want; it returns the
// last count.
func (e *env) waitDrops(network, reason string, want uint64) uint64 {
	e.t.Helper()
	got := e.drops(network, reason)
	for deadline := time.Now().Add(5 * time.Second); got != want && time.Now().Before(deadline); got = e.drops(network, reason) {
		time.Sleep(100 * time.Millisecond)
	}
	return got
}
