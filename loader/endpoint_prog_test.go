package loader

import (
	"net"
	"net/netip"
	"testing"
)

// The fixture: endpoints A and B of network 1 and C of network 2. A is the
// endpoint the test runs act for: test runs use the loopback device of the
// test's netns, ifindex 1, so A is keyed {testCookie, 1}, testCookie the
// cookie of the test's netns (what the direct programs read; the stubs
// are given it).
const (
	netA = 1
	netC = 2
)

var testCookie = ownCookie()

func ownCookie() uint64 {
	c, err := NetnsCookie("")
	if err != nil {
		panic(err)
	}
	return c
}

var (
	macA      = mac("02:00:00:00:00:0a")
	macB      = mac("02:00:00:00:00:0b")
	macC      = mac("02:00:00:00:00:0c")
	macRouter = mac("02:00:00:00:00:fe")
	macEvil   = mac("02:00:00:00:00:66")
	llA       = linkLocal([6]byte(macA)).String()
	llB       = linkLocal([6]byte(macB)).String()
)

func setupEndpoints(t testing.TB, d *Datapath) {
	t.Helper()
	eps := []Endpoint{
		{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA,
			IPs: []netip.Addr{netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("2001:db8:1::10")}},
		{NetnsCookie: testCookie + 1, Ifindex: 1, MAC: macB, NetworkID: netA, IPs: []netip.Addr{netip.MustParseAddr("10.1.0.11")}},
		{NetnsCookie: testCookie + 2, Ifindex: 7, MAC: macC, NetworkID: netC, IPs: []netip.Addr{netip.MustParseAddr("10.2.0.12")}},
	}
	for _, ep := range eps {
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
}

type progCase struct {
	name    string
	frame   []byte
	verdict uint32             // verdictNext for a pass (runCases asks for the program's own), verdictDrop
	want    func(n int) counts // deltas for a frame of n bytes
}

func runCases(t *testing.T, d *Datapath, prog string, cases []progCase) {
	runCasesMark(t, d, prog, 0, cases)
}

// runCasesMark runs the cases with skb->mark set to mark.
func runCasesMark(t *testing.T, d *Datapath, prog string, mark uint32, cases []progCase) {
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		t.Fatal(err)
	}
	progs := map[string]any{"ep_egress": p.egress, "ep_ingress": p.ingress, "parent_ingress": d.parentIngress, "parent_egress": d.parentEgress}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, d)
			want := c.verdict
			if want == verdictNext {
				want = passes(prog)
			}
			if got, _ := runMark(t, progs[prog].(runner), c.frame, mark); got != want {
				t.Errorf("verdict %#x, want %#x", got, want)
			}
			expectDelta(t, d, before, c.want(len(c.frame)))
		})
	}
}

func txA(n int) counts { return counts{"net 1 tx": one(n)} }

func dropA(reason string) func(int) counts {
	return func(n int) counts { return counts{"drop 1 " + reason: one(n)} }
}

// cutShort: a frame of network 1 cut short, dropped for reason by prog
// and counted as malformed there too.
func cutShort(prog, reason string) func(int) counts {
	return func(n int) counts { return counts{"drop 1 " + reason: one(n), "malformed " + prog: one(n)} }
}

func v4(src, dst string) []byte   { return ipv4Packet(src, dst, 1, icmpEcho(8, 32)) }
func v6(src, dst string) []byte   { return ipv6Packet(src, dst, 58, icmpEcho(128, 32)) }
func na(target, ll string) []byte { return ipv6Packet(ll, "ff02::1", 58, neighborAdvert(target, macA)) }

func TestEndpointEgress(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	hopByHop := append([]byte{58, 0, 5, 2, 0, 0, 1, 0}, neighborAdvert("2001:db8:1::99", nil)...)
	cases := []progCase{
		{"ipv4 own", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictNext, txA},
		{"ipv6 own", ethFrame(macRouter, macA, 0x86dd, v6("2001:db8:1::10", "2001:db8:2::1")), verdictNext, txA},
		{"ipv6 own link-local", ethFrame(macRouter, macA, 0x86dd, v6(llA, "fe80::1")), verdictNext, txA},
		{"ipv6 unspecified (DAD)", ethFrame(mac("33:33:ff:00:00:10"), macA, 0x86dd, v6("::", "ff02::1:ff00:10")), verdictNext, txA},
		{"arp own", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "10.1.0.10", make([]byte, 6), "10.1.0.1")), verdictNext, txA},
		{"arp probe", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "0.0.0.0", make([]byte, 6), "10.1.0.10")), verdictNext, txA},
		{"arp probe for a neighbour's address", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "0.0.0.0", make([]byte, 6), "10.1.0.11")), verdictDrop, dropA("arp_spoof")},
		{"arp probe for another address", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "0.0.0.0", make([]byte, 6), "10.1.0.99")), verdictDrop, dropA("arp_spoof")},
		{"nd own", ethFrame(mac("33:33:00:00:00:01"), macA, 0x86dd, na("2001:db8:1::10", llA)), verdictNext, txA},
		{"to same network", ethFrame(macB, macA, 0x0800, v4("10.1.0.10", "10.1.0.11")), verdictNext, txA},
		{"other ethertype", ethFrame(mac("01:80:c2:00:00:0e"), macA, 0x88cc, make([]byte, 46)), verdictNext, txA},
		{"mac spoof", ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictDrop, dropA("mac_spoof")},
		{"mac spoof of a neighbour", ethFrame(macRouter, macB, 0x0800, v4("10.1.0.11", "10.2.0.12")), verdictDrop, dropA("mac_spoof")},
		{"ipv4 spoof", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.99", "10.2.0.12")), verdictDrop, dropA("ip_spoof")},
		{"ipv4 spoof of a neighbour", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.11", "10.2.0.12")), verdictDrop, dropA("ip_spoof")},
		{"ipv6 spoof", ethFrame(macRouter, macA, 0x86dd, v6("2001:db8:1::99", "2001:db8:2::1")), verdictDrop, dropA("ip_spoof")},
		{"own frame behind a vlan tag", tagged(ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), 0x8100, 5), verdictDrop, dropA("vlan_tag")},
		{"priority-tagged", tagged(ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), 0x8100, 0), verdictDrop, dropA("vlan_tag")},
		{"a pre-802.1ad tag (0x9100)", tagged(ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), 0x9100, 10), verdictDrop, dropA("vlan_tag")},
		{"a pre-802.1ad tag (0x9200)", tagged(ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), 0x9200, 10), verdictDrop, dropA("vlan_tag")},
		{"ipv4 unspecified on tcp", ethFrame(macRouter, macA, 0x0800, ipv4Packet("0.0.0.0", "10.2.0.12", 6, make([]byte, 20))), verdictDrop, dropA("ip_spoof")},
		{"ipv4 unspecified on icmp", ethFrame(macRouter, macA, 0x0800, v4("0.0.0.0", "10.2.0.12")), verdictDrop, dropA("ip_spoof")},
		{"ipv4 unspecified on udp to another port than dhcp's", ethFrame(broadcastMAC, macA, 0x0800, ipv4Packet("0.0.0.0", "255.255.255.255", 17, udp(68, 53, 40))), verdictDrop, dropA("ip_spoof")},
		{"ipv4 unspecified on a later udp fragment", ethFrame(broadcastMAC, macA, 0x0800, laterFragment(ipv4Packet("0.0.0.0", "255.255.255.255", 17, make([]byte, 40)))), verdictDrop, dropA("ip_spoof")},
		{"igmp report before an address", ethFrame(mac("01:00:5e:00:00:16"), macA, 0x0800, ipv4Packet("0.0.0.0", "224.0.0.22", 2, make([]byte, 16))), verdictNext, txA},
		{"three tags", tagged(tagged(tagged(ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), 0x8100, 7), 0x8100, 6), 0x88a8, 5), verdictDrop, dropA("vlan_tag")},
		{"arp sender mac spoof", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(2, macB, "10.1.0.10", macRouter, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
		{"arp sender ip spoof", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(2, macA, "10.1.0.1", macRouter, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
		{"nd foreign target", ethFrame(mac("33:33:00:00:00:01"), macA, 0x86dd, na("2001:db8:1::99", llA)), verdictDrop, dropA("nd_spoof")},
		{"nd foreign lladdr", ethFrame(mac("33:33:00:00:00:01"), macA, 0x86dd,
			ipv6Packet(llA, "ff02::1", 58, neighborAdvert("2001:db8:1::10", macB))), verdictDrop, dropA("nd_spoof")},
		{"nd foreign target behind hop-by-hop", ethFrame(mac("33:33:00:00:00:01"), macA, 0x86dd, ipv6Packet(llA, "ff02::1", 0, hopByHop)), verdictDrop, dropA("nd_spoof")},
		{"to another network", ethFrame(macC, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictDrop, dropA("cross_network")},
		// Cut short: the wire pads the frame with zeros that its receiver
		// reads, so none is sent.
		{"truncated ipv4", ethFrame(macRouter, macA, 0x0800, longIHL(v4("10.9.9.9", "10.2.0.12")[:20])), verdictDrop, cutShort("ep_egress", "unparsable")},
		{"truncated vlan tag", append(ethFrame(macRouter, macA, 0x8100, nil), 0, 5), verdictDrop, cutShort("ep_egress", "vlan_tag")},
		{"truncated vlan tag, another mac", append(ethFrame(broadcastMAC, macEvil, 0x8100, nil), 0, 10, 8), verdictDrop, cutShort("ep_egress", "mac_spoof")},
		{"truncated nd", ethFrame(mac("33:33:00:00:00:01"), macA, 0x86dd, ipv6Packet(llA, "ff02::1", 58, []byte{136, 0, 0, 0})), verdictDrop, cutShort("ep_egress", "unparsable")},
		{"arp for B's address cut after its sender", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(2, macA, "10.1.0.11", broadcastMAC, "10.1.0.1")[:18]), verdictDrop, cutShort("ep_egress", "unparsable")},
	}
	runCases(t, d, "ep_egress", cases)

	// Before its IPv4 address (a DHCP client checking the address offered,
	// RFC 2131 4.4.1) A probes any address, still as itself.
	if err := d.SetEndpoint(Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, IPs: addrs("2001:db8:1::10")}); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "ep_egress", []progCase{
		{"arp probe of an offer", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "0.0.0.0", make([]byte, 6), "10.1.0.99")), verdictNext, txA},
		{"arp probe of an offer, another mac", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macB, "0.0.0.0", make([]byte, 6), "10.1.0.99")), verdictDrop, dropA("arp_spoof")},
	})
	// While the agent checks the address a renewal moved A's lease to
	// (Probing), likewise; its own address stays its only source.
	if err := d.SetEndpoint(Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, IPs: addrs("10.1.0.10"), Probing: true}); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "ep_egress", []progCase{
		{"arp probe of a renewal's address", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "0.0.0.0", make([]byte, 6), "10.1.0.99")), verdictNext, txA},
		{"arp from it while probing", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(2, macA, "10.1.0.99", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
	})
}

func TestEndpointIngress(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	rxA := func(n int) counts { return counts{"net 1 rx": one(n)} }
	fromB := func(dst net.HardwareAddr, typ uint16, payload []byte) []byte {
		return ethFrame(dst, macB, typ, payload)
	}
	icmp6B := func(body []byte) []byte { return fromB(allNodes, 0x86dd, ipv6Packet(llB, "ff02::1", 58, body)) }
	// From the wire: parent_ingress marked them. The network has no RA
	// source (ipv6_ra=ignore: TestRASource has one).
	runCasesMark(t, d, "ep_ingress", WireMark, []progCase{
		{"routed", ethFrame(macA, macRouter, 0x0800, v4("10.2.0.12", "10.1.0.10")), verdictNext, rxA},
		{"router's ra", ethFrame(allNodes, macRouter, 0x86dd, ipv6Packet("fe80::1", "ff02::1", 58, routerAdvert(llaOpt(1, macRouter)))), verdictDrop, dropA("ra_ignore")},
		{"from another network", ethFrame(macA, macC, 0x0800, v4("10.2.0.12", "10.1.0.10")), verdictDrop, dropA("cross_network")},
		{"a neighbour's mac with a foreign ip (reflected)", fromB(macA, 0x0800, v4("10.1.0.99", "10.1.0.10")), verdictDrop, dropA("ip_spoof")},
		{"router's gratuitous arp", ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", make([]byte, 6), "10.1.0.1")), verdictNext, rxA},
		{"another host's arp for a local address", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.11", broadcastMAC, "10.1.0.11")), verdictDrop, dropA("arp_spoof")},
		{"another host's arp binding the router's address to B's mac", ethFrame(macA, macEvil, 0x0806, arpPacket(2, macB, "10.1.0.1", macA, "10.1.0.10")), verdictDrop, dropA("arp_spoof")},
		{"another host's na for a local address", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 58, neighborAdvert("2001:db8:1::10", macEvil))), verdictDrop, dropA("nd_spoof")},
		{"router's ns", ethFrame(allNodes, macRouter, 0x86dd, ipv6Packet("fe80::1", "ff02::1:ff00:10", 58, neighborSolicit("2001:db8:1::10", llaOpt(1, macRouter)))), verdictNext, rxA},
		{"another host's ns from a local address", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("2001:db8:1::10", "ff02::1:ff00:1", 58, neighborSolicit("2001:db8:1::1", llaOpt(1, macEvil)))), verdictDrop, dropA("nd_spoof")},
		{"another host's rs from a local link-local address", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet(llA, "ff02::2", 58, routerSolicit(llaOpt(1, macEvil)))), verdictDrop, dropA("nd_spoof")},
		{"fragmented na", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 44, fragment(0, 58, neighborAdvert("2001:db8:1::99", macEvil)))), verdictDrop, dropA("unparsable")},
		{"a redirect to B's link-local, with another mac", ethFrame(macA, macRouter, 0x86dd, ipv6Packet("fe80::1", llA, 58, append(redirect(llB, "2001:db8:9::1"), llaOpt(2, macEvil)...))), verdictDrop, dropA("nd_spoof")},
		{"a redirect to another host", ethFrame(macA, macRouter, 0x86dd, ipv6Packet("fe80::1", llA, 58, append(redirect("fe80::fe", "2001:db8:9::1"), llaOpt(2, macEvil)...))), verdictDrop, dropA("ra_ignore")},
		// Another host binding an address that is no container's (the
		// router's) to B's MAC, in a link-layer option.
		{"another host's na binding the router's address to B's mac", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 58, neighborAdvert("fe80::1", macB))), verdictDrop, dropA("nd_spoof")},
		{"another host's ns from the router's address with B's mac", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::1", "ff02::1:ff00:10", 58, neighborSolicit("2001:db8:1::10", llaOpt(1, macB)))), verdictDrop, dropA("nd_spoof")},
		{"another host's rs with B's mac", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::2", 58, routerSolicit(llaOpt(1, macB)))), verdictDrop, dropA("nd_spoof")},
		{"router's na for itself", ethFrame(allNodes, macRouter, 0x86dd, ipv6Packet("fe80::1", "ff02::1", 58, neighborAdvert("fe80::1", macRouter))), verdictNext, rxA},
		// Bytes after the IPv6 payload (padding, a trailer) are no option.
		{"router's na with a trailer", ethFrame(allNodes, macRouter, 0x86dd, append(ipv6Packet("fe80::1", "ff02::1", 58, neighborAdvert("fe80::1", macRouter)), make([]byte, 8)...)), verdictNext, rxA},
		{"another host's na for a local address behind an extension header", ethFrame(allNodes, macEvil, 0x86dd, ipv6PacketExt("fe80::66", "ff02::1", 58, neighborAdvert("2001:db8:1::10", macEvil))), verdictDrop, dropA("nd_spoof")},
		{"truncated arp", ethFrame(macA, macRouter, 0x0806, arpPacket(1, macC, "10.2.0.12", macA, "10.1.0.10")[:20]), verdictNext, func(n int) counts {
			return counts{"net 1 rx": one(n), "malformed ep_ingress": one(n)}
		}},
		// A copy of the wire's frame for B (A's link in macvlan source
		// mode, B's or the router's MAC listed), or a frame for another
		// host (A's passthru parent promiscuous).
		{"the wire's unicast for B", ethFrame(macB, macRouter, 0x0800, v4("198.51.100.7", "10.1.0.11")), verdictDrop, dropA("foreign_dst")},
		{"the wire's unicast for another host", ethFrame(macEvil, macRouter, 0x0800, v4("198.51.100.7", "10.1.0.66")), verdictDrop, dropA("foreign_dst")},
	})
	// From a link on the same parent, straight to A: checked against the
	// sender's entry, whatever its own programs did.
	runCases(t, d, "ep_ingress", []progCase{
		{"same network", fromB(macA, 0x0800, v4("10.1.0.11", "10.1.0.10")), verdictNext, rxA},
		{"broadcast", fromB(broadcastMAC, 0x0806, arpPacket(1, macB, "10.1.0.11", make([]byte, 6), "10.1.0.10")), verdictNext, rxA},
		{"neighbour's ns", icmp6B(neighborSolicit("fe80::1", llaOpt(1, macB))), verdictNext, rxA},
		{"unknown mac (a nested macvlan)", ethFrame(macA, macEvil, 0x0800, v4("10.1.0.99", "10.1.0.10")), verdictDrop, dropA("unknown_source")},
		{"a nested macvlan's arp for the router's address", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("unknown_source")},
		{"a multicast source's arp for the router's address", ethFrame(broadcastMAC, mac("03:00:00:00:00:66"), 0x0806, arpPacket(2, mac("03:00:00:00:00:66"), "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("unknown_source")},
		{"the router's mac, not from the wire", ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(2, macRouter, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("unknown_source")},
		{"from another network", ethFrame(macA, macC, 0x0800, v4("10.2.0.12", "10.1.0.10")), verdictDrop, dropA("cross_network")},
		{"neighbour's spoofed ip", fromB(macA, 0x0800, v4("10.1.0.99", "10.1.0.10")), verdictDrop, dropA("ip_spoof")},
		{"neighbour's arp for the router", fromB(broadcastMAC, 0x0806, arpPacket(2, macB, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
		{"neighbour's arp probe for A's address", fromB(broadcastMAC, 0x0806, arpPacket(1, macB, "0.0.0.0", make([]byte, 6), "10.1.0.10")), verdictDrop, dropA("arp_spoof")},
		{"neighbour's arp probe for its own address", fromB(broadcastMAC, 0x0806, arpPacket(1, macB, "0.0.0.0", make([]byte, 6), "10.1.0.11")), verdictNext, rxA},
		{"neighbour's ra", icmp6B(routerAdvert(llaOpt(1, macB))), verdictDrop, dropA("ra_guard")},
		{"neighbour's ns with a foreign slla", icmp6B(neighborSolicit("fe80::1", llaOpt(1, macRouter))), verdictDrop, dropA("nd_spoof")},
		{"neighbour's na for A's address", icmp6B(neighborAdvert("2001:db8:1::10", macB)), verdictDrop, dropA("nd_spoof")},
		{"neighbour's dad ns for A's link-local", fromB(allNodes, 0x86dd, ipv6Packet("::", "ff02::1:ff00:10", 58, neighborSolicit(llA))), verdictDrop, dropA("nd_spoof")},
		{"neighbour's dad ns for its own link-local", fromB(allNodes, 0x86dd, ipv6Packet("::", "ff02::1:ff00:11", 58, neighborSolicit(llB))), verdictNext, rxA},
		{"neighbour's tagged frame", tagged(fromB(macA, 0x0800, v4("10.1.0.11", "10.1.0.10")), 0x8100, 5), verdictDrop, dropA("vlan_tag")},
		{"neighbour's pre-802.1ad tag", tagged(fromB(macA, 0x0800, v4("10.1.0.11", "10.1.0.10")), 0x9100, 5), verdictDrop, dropA("vlan_tag")},
		{"neighbour's truncated tag", append(fromB(broadcastMAC, 0x8100, nil), 0, 10, 8), verdictDrop, cutShort("ep_ingress", "vlan_tag")},
		{"neighbour's arp for the router cut after its sender", fromB(broadcastMAC, 0x0806, arpPacket(2, macB, "10.1.0.1", broadcastMAC, "10.1.0.1")[:18]), verdictDrop, cutShort("ep_ingress", "unparsable")},
		{"a truncated tag not from the wire", append(ethFrame(broadcastMAC, macEvil, 0x8100, nil), 0, 10, 8), verdictDrop, cutShort("ep_ingress", "unknown_source")},
		{"neighbour's dhcp server reply", fromB(broadcastMAC, 0x0800, ipv4Packet("10.1.0.11", "255.255.255.255", 17, udp(67, 68, 240))), verdictDrop, dropA("dhcp_guard")},
		// A copy of B's frame for the router or for C, passing B's rules.
		{"neighbour's unicast for the router", fromB(macRouter, 0x0800, v4("10.1.0.11", "198.51.100.7")), verdictDrop, dropA("foreign_dst")},
		{"neighbour's unicast for another endpoint", fromB(macC, 0x0800, v4("10.1.0.11", "10.2.0.12")), verdictDrop, dropA("foreign_dst")},
		{"neighbour's arp reply for another endpoint", fromB(macC, 0x0806, arpPacket(2, macB, "10.1.0.11", macC, "10.2.0.12")), verdictDrop, dropA("foreign_dst")},
		{"neighbour's multicast", fromB(mac("01:00:5e:00:00:fb"), 0x0800, v4("10.1.0.11", "224.0.0.251")), verdictNext, rxA},
	})
}

// TestNoEndpoint: the programs of a link whose endpoint is not in the
// table (its removal's last moment, a full table) drop every frame, and
// count it as no_endpoint under network 0.
func TestNoEndpoint(t *testing.T) {
	d := newTestDatapath(t)
	p, err := d.endpointPrograms(99)
	if err != nil {
		t.Fatal(err)
	}
	frame := ethFrame(macRouter, macEvil, 0x0800, v4("10.9.9.9", "10.2.0.12"))
	for name, prog := range map[string]runner{"ep_egress": p.egress, "ep_ingress": p.ingress} {
		before := snapshot(t, d)
		if got, _ := runMark(t, prog, frame, WireMark); got != verdictDrop {
			t.Errorf("%s: verdict %#x, want drop", name, got)
		}
		expectDelta(t, d, before, counts{"drop 0 no_endpoint": one(len(frame))})
	}
}

// TestWireMark: parent_ingress marks frames for local endpoints (and
// flood), not frames for the host; ep_ingress clears the mark.
func TestWireMark(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dst  net.HardwareAddr
		want uint32
	}{
		{"to an endpoint", macA, WireMark | 1},
		{"broadcast", broadcastMAC, WireMark | 1},
		{"to the host", macRouter, 1},
	} {
		frame := ethFrame(c.dst, macRouter, 0x0800, v4("198.51.100.7", "10.1.0.10"))
		if _, mark := runMark(t, d.parentIngress, frame, 1); mark != c.want {
			t.Errorf("%s: parent_ingress left mark %#x, want %#x", c.name, mark, c.want)
		}
	}
	if _, mark := runMark(t, p.ingress, ethFrame(macA, macRouter, 0x0800, v4("198.51.100.7", "10.1.0.10")), WireMark|1); mark != 1 {
		t.Errorf("ep_ingress left mark %#x, want %#x (its bit cleared)", mark, 1)
	}
}

// ipv6PacketExt is ipv6Packet with one destination options header (PadN)
// before the upper-layer payload.
func ipv6PacketExt(src, dst string, next byte, payload []byte) []byte {
	first, body := extChain(1, next, payload)
	return ipv6Packet(src, dst, first, body)
}
