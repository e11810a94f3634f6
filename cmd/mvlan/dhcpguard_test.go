package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCPSpoofedClient: on a DHCP network served by dnsmasq, container 2
// (root in its namespace) speaks DHCP in container 1's name, with what it
// can hear of container 1's broadcasts (its MAC, client identifier and
// address): a DHCPRELEASE and a DHCPDECLINE of container 1's lease, and a
// DHCPREQUEST for a made-up client, which would take an address of the
// pool. The datapath drops all three on container 2's link (dhcp_guard
// moves by exactly 3): dnsmasq's log has none of them, while it has
// container 2's release of its own lease, sent after them from the same
// socket (so the three were sent where they would have worked), and
// container 1 keeps its lease.
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
	// What reached the server, from its log (--log-dhcp), which has the
	// own release once it is served: the spoofed ones went before it.
	srv.waitLog(5*time.Second, "DHCPRELEASE(wire0) "+addrOf2(ep2)+" "+ep2.MAC, c2+"'s release of its own lease (sent after the spoofed ones)")
	if got := append(srv.heard(ep1.MAC, "DHCPRELEASE", "DHCPDECLINE"), srv.heard(fake.String())...); len(got) > 0 {
		t.Errorf("dnsmasq heard %s's spoofs: %q", c2, got)
	}
	srv.waitRead(2*time.Second, c1+"'s lease of "+addr1.String()+" kept",
		func(lines [][]string) bool { return hasLine(lines, 1, ep1.MAC) && !hasLine(lines, 1, fake.String()) })
	if got := e.waitDrops("lan", "dhcp_guard", before+3); got != before+3 {
		t.Errorf("dhcp_guard drops of lan went from %d to %d; want +3", before, got)
	}
}

// TestDHCP6SpoofedClient is TestDHCPSpoofedClient for DHCPv6 (dnsmasq
// with a DHCPv6 range): container 2 sends a Release and a Decline of
// container 1's IA_NA under container 1's DUID (which dnsmasq's lease
// file shows, as container 1's Solicits to ff02::1:2 do) from its own
// link-local address; both are dropped (dhcp_guard +2): dnsmasq's log
// has neither, while it has container 2's Release of its own lease, sent
// after them from the same socket, and container 1 keeps its lease.
func TestDHCP6SpoofedClient(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	srv := startDnsmasq6(t, sb, sb.AddVeth(t, "eth1"))
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	srv.agent = e.a
	e.a.start()
	t.Cleanup(e.cleanup)
	e.a.ok("network", "create", "--ipam-driver", "dhcp", "--ipv6", "--subnet", "fd00:70::/64", "-o", "parent=eth0", "lan")
	c1, c2 := e.name("1"), e.name("2")
	ep1, ep2 := e.runD(c1, "lan"), e.runD(c2, "lan")
	a1, a2 := v6Of(t, ep1).Addr(), v6Of(t, ep2).Addr()
	server := srv.serverDUID()
	release := func(typ dhcpv6.MessageType, a netip.Addr) []byte {
		duid, iaid := srv.client6(a)
		m, err := dhcpv6.NewMessage()
		if err != nil {
			t.Fatal(err)
		}
		m.MessageType = typ
		m.AddOption(dhcpv6.OptClientID(duid))
		m.AddOption(dhcpv6.OptServerID(server))
		ia := &dhcpv6.OptIANA{IaId: iaid}
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.IP(a.AsSlice())})
		m.AddOption(ia)
		m.AddOption(dhcpv6.OptElapsedTime(0))
		return m.ToBytes()
	}
	spoofs := [][]byte{release(dhcpv6.MessageTypeRelease, a1), release(dhcpv6.MessageTypeDecline, a1)}
	own := release(dhcpv6.MessageTypeRelease, a2)
	// Read before the Release: dnsmasq takes a released lease out of the file.
	duid1, _ := srv.client6(a1)
	duid2, _ := srv.client6(a2)
	before := e.drops("lan", "dhcp_guard")
	conn := dhcp6Socket(t, c2)
	// eth0 by its index in c2: a zone's name is looked up in the test's
	// own namespace.
	idx := strings.TrimSuffix(strings.Fields(e.in(c2, "ip", "-o", "link", "show", "dev", "eth0"))[0], ":")
	to := &net.UDPAddr{IP: net.ParseIP("ff02::1:2"), Port: 547, Zone: idx}
	for _, m := range spoofs {
		_, _ = conn.WriteToUDP(m, to) // dropped on the link: the error, if any, is ENOBUFS
	}
	if _, err := conn.WriteToUDP(own, to); err != nil {
		t.Fatalf("%s's Release of its own lease: %v", c2, err)
	}
	srv.waitLog(5*time.Second, "DHCPRELEASE(wire0) "+colonHex(duid2.ToBytes()), c2+"'s Release of its own lease (sent after the spoofed ones)")
	if got := srv.heard(colonHex(duid1.ToBytes()), "DHCPRELEASE", "DHCPDECLINE"); len(got) > 0 {
		t.Errorf("dnsmasq heard %s's spoofs: %q", c2, got)
	}
	srv.waitRead(2*time.Second, c1+"'s lease of "+a1.String()+" kept", func(lines [][]string) bool { return hasLine(lines, 2, a1.String()) })
	if got := e.waitDrops("lan", "dhcp_guard", before+2); got != before+2 {
		t.Errorf("dhcp_guard drops of lan went from %d to %d; want +2", before, got)
	}
}

// serverDUID is dnsmasq's DHCPv6 server DUID, from its lease file.
func (d *dnsmasq) serverDUID() dhcpv6.DUID {
	d.t.Helper()
	for _, f := range d.Lines() {
		if len(f) == 2 && f[0] == "duid" {
			if b, err := hex.DecodeString(strings.ReplaceAll(f[1], ":", "")); err == nil {
				if duid, err := dhcpv6.DUIDFromBytes(b); err == nil {
					return duid
				}
			}
		}
	}
	d.t.Fatalf("no server DUID in dnsmasq's lease file:\n%q", d.Lines())
	return nil
}

// client6 is the DUID and IAID of dnsmasq's DHCPv6 lease of addr.
func (d *dnsmasq) client6(addr netip.Addr) (dhcpv6.DUID, [4]byte) {
	d.t.Helper()
	// dnsmasq writes the file after its Reply: a moment after the run.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		for _, f := range d.Lines() {
			if len(f) < 5 || f[2] != addr.String() {
				continue
			}
			iaid, err1 := strconv.ParseUint(f[1], 10, 32)
			b, err2 := hex.DecodeString(strings.ReplaceAll(f[4], ":", ""))
			duid, err3 := dhcpv6.DUIDFromBytes(b)
			if err1 == nil && err2 == nil && err3 == nil {
				return duid, [4]byte{byte(iaid >> 24), byte(iaid >> 16), byte(iaid >> 8), byte(iaid)}
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no DHCPv6 lease of %s in dnsmasq's lease file within 3 s:\n%q", addr, d.Lines())
			return nil, [4]byte{}
		}
	}
}

// dhcp6Socket is a UDP socket of namespace ns on the DHCPv6 client port
// (the agent's client holds it only during its exchanges).
func dhcp6Socket(t *testing.T, ns string) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := nstest.In(ns, func() (err error) {
		conn, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: 546})
		return err
	})
	if err != nil {
		t.Fatalf("udp socket on port 546 in %s: %v", ns, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitRead polls dnsmasq's lease file (at most within) until one read of
// it is ok, and returns that read. One read, as dnsmasq truncates the file
// before it writes it again: a read in between has no lease at all.
func (d *dnsmasq) waitRead(within time.Duration, what string, ok func(lines [][]string) bool) [][]string {
	d.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
		lines := d.Lines()
		if ok(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not seen within %v; lease file:\n%q\nagent log:\n%s", what, within, lines, d.agent.log)
		}
	}
}

// waitLog polls dnsmasq's log (at most within) until it has line.
func (d *dnsmasq) waitLog(within time.Duration, line, what string) {
	d.t.Helper()
	for deadline := time.Now().Add(within); !strings.Contains(d.Log(), line); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: %q not in dnsmasq's log within %v:\n%s", what, line, within, d.Log())
		}
	}
}

// heard: dnsmasq's log lines that mention who and any of what (none:
// any line of who's).
func (d *dnsmasq) heard(who string, what ...string) []string {
	var out []string
	for line := range strings.Lines(d.Log()) {
		if strings.Contains(line, who) && (len(what) == 0 || slices.ContainsFunc(what, func(w string) bool { return strings.Contains(line, w) })) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// colonHex is b as dnsmasq logs a DUID.
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

// addrOf2 is ep's IPv4 address without its length.
func addrOf2(ep api.Endpoint) string { return netip.MustParsePrefix(addrOf(ep, false)).Addr().String() }

// hasLine reports whether a line has field i equal to v.
func hasLine(lines [][]string, i int, v string) bool {
	for _, f := range lines {
		if len(f) > i && f[i] == v {
			return true
		}
	}
	return false
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
