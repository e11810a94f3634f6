package loader

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// Parent tests run on the loopback device of the test's netns (ifindex 1),
// the parent of network 1 (untagged) unless a case says otherwise.
func TestParentIngress(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	rx := func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }
	with := func(extra string) func(int) counts {
		return func(n int) counts { return counts{"vlan 1/0 rx": one(n), extra: one(n)} }
	}
	qinq := tagged(tagged(sizedFrame(64), 0x8100, 70), 0x88a8, 60)
	runCases(t, d, "parent_ingress", []progCase{
		{"unicast 64", sizedFrame(64), verdictNext, rx},
		{"unicast 1500", sizedFrame(1500), verdictNext, rx},
		{"tagged 802.1q", tagged(sizedFrame(64), 0x8100, 50), verdictNext,
			func(n int) counts { return counts{"vlan 1/50 rx": one(n)} }},
		{"tagged 802.1ad over 802.1q", qinq, verdictNext,
			func(n int) counts { return counts{"vlan 1/60 rx": one(n)} }},
		{"tagged broadcast is not the network's", tagged(ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", make([]byte, 6), "10.1.0.10")), 0x8100, 50), verdictNext,
			func(n int) counts { return counts{"vlan 1/50 rx": one(n)} }},
		{"broadcast", ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", make([]byte, 6), "10.1.0.10")), verdictNext, with("flood 1/0 broadcast rx")},
		{"multicast v4", ethFrame(mac("01:00:5e:00:00:fb"), macRouter, 0x0800, v4("10.1.0.1", "224.0.0.251")), verdictNext, with("flood 1/0 multicast rx")},
		{"multicast v6", ethFrame(mac("33:33:00:00:00:01"), macRouter, 0x86dd, v6("fe80::1", "ff02::1")), verdictNext, with("flood 1/0 multicast rx")},
		{"hairpin v4", ethFrame(macB, macRouter, 0x0800, v4("10.1.0.10", "10.1.0.11")), verdictNext, with("hairpin 1/0")},
		{"hairpin from another network", ethFrame(macA, macRouter, 0x0800, v4("10.2.0.12", "10.1.0.10")), verdictNext, with("hairpin 1/0")},
		{"hairpin v6", ethFrame(macRouter, macRouter, 0x86dd, v6("2001:db8:1::10", "2001:db8:2::1")), verdictNext, with("hairpin 1/0")},
		{"own source is no hairpin", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.1")), verdictNext, rx},
		{"east-west", ethFrame(macB, macA, 0x0800, v4("10.1.0.10", "10.1.0.11")), verdictNext, with("eastwest 1/0")},
		{"east-west arp", ethFrame(macB, macA, 0x0806, arpPacket(2, macA, "10.1.0.10", macB, "10.1.0.11")), verdictNext, with("eastwest 1/0")},
		{"east-west across networks is not", ethFrame(macC, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictNext, rx},
		{"truncated ipv4", ethFrame(macA, macRouter, 0x0800, longIHL(v4("10.1.0.10", "10.1.0.11")[:20])), verdictNext, with("malformed parent_ingress")},
		{"truncated vlan tag", append(ethFrame(macA, macRouter, 0x8100, nil), 0, 5), verdictNext, with("malformed parent_ingress")},
		{"priority-tagged broadcast is the network's", tagged(ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", make([]byte, 6), "10.1.0.10")), 0x8100, 0), verdictNext, with("flood 1/0 broadcast rx")},
		{"a priority tag over VLAN 20 is VLAN 20's", tagged(tagged(ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.20.0.1", make([]byte, 6), "10.20.0.10")), 0x8100, 20), 0x8100, 0), verdictNext, rx},
	})
	// Nor does a unicast to an endpoint behind it get the wire mark.
	if _, mark := runMark(t, d.parentIngress, tagged(tagged(ethFrame(macA, macRouter, 0x0800, v4("10.20.0.1", "10.1.0.10")), 0x8100, 20), 0x8100, 0), 0); mark != 0 {
		t.Errorf("0/20 unicast to A: mark %#x, want none", mark)
	}
}

func TestParentEgress(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	tx := func(n int) counts { return counts{"vlan 1/0 tx": one(n)} }
	runCases(t, d, "parent_egress", []progCase{
		{"unicast", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictNext, tx},
		// A tag in the frame was put on above a macvlan (a VLAN device's
		// is in the skb: TestParentEgressTagPlace).
		{"tagged in the frame by a made-up mac", tagged(ethFrame(macRouter, macEvil, 0x0800, v4("10.10.0.66", "10.10.0.1")), 0x8100, 10), verdictDrop, dropA("vlan_tag")},
		{"tagged in the frame by another network's endpoint", tagged(ethFrame(macRouter, macC, 0x0800, v4("10.2.0.12", "10.1.0.1")), 0x8100, 20), verdictDrop, dropA("vlan_tag")},
		{"802.1ad and 802.1q in the frame", tagged(tagged(ethFrame(macRouter, macEvil, 0x0800, v4("10.10.0.66", "10.10.0.1")), 0x8100, 10), 0x88a8, 1), verdictDrop, dropA("vlan_tag")},
		{"an endpoint's pre-802.1ad tag", tagged(ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), 0x9100, 10), verdictDrop, dropA("vlan_tag")},
		// Past the endpoint's own programs (PACKET_QDISC_BYPASS, a nested
		// link) with a MAC of its making: the kernel takes 0x9100 and
		// 0x9200 for no tag, an older switch does.
		{"a made-up mac's pre-802.1ad tag (0x9100)", tagged(ethFrame(macRouter, macEvil, 0x0800, v4("10.10.0.66", "10.10.0.1")), 0x9100, 10), verdictDrop, dropA("vlan_tag")},
		{"a made-up mac's pre-802.1ad tag (0x9200)", tagged(ethFrame(macRouter, macEvil, 0x0800, v4("10.10.0.66", "10.10.0.1")), 0x9200, 10), verdictDrop, dropA("vlan_tag")},
		{"tagged by an endpoint of the parent's network", tagged(ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), 0x8100, 4094), verdictDrop, dropA("vlan_tag")},
		{"truncated tag, a made-up mac", append(ethFrame(broadcastMAC, macEvil, 0x8100, nil), 0, 10, 8), verdictDrop, cutShort("parent_egress", "vlan_tag")},
		{"arp for B's address cut after its sender", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(2, macA, "10.1.0.11", broadcastMAC, "10.1.0.1")[:18]), verdictDrop, cutShort("parent_egress", "unparsable")},
		{"broadcast", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "10.1.0.10", make([]byte, 6), "10.1.0.1")), verdictNext,
			func(n int) counts { return counts{"vlan 1/0 tx": one(n), "flood 1/0 broadcast tx": one(n)} }},
		{"no hairpin on egress", ethFrame(macRouter, macRouter, 0x0800, v4("10.1.0.1", "10.2.0.12")), verdictNext, tx},
		// A link that is no endpoint's (the host's; one a container nested
		// on the parent, sending without a socket) claims a container's
		// address: the wire would bind it to that link's MAC.
		{"another link's arp for A's address", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.10", broadcastMAC, "10.1.0.10")), verdictDrop, dropA("arp_spoof")},
		{"another link's arp probe to A", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(1, macEvil, "10.1.0.66", make([]byte, 6), "10.1.0.10")), verdictNext,
			func(n int) counts { return counts{"vlan 1/0 tx": one(n), "flood 1/0 broadcast tx": one(n)} }},
		{"another link's ipv4 from A's address", ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictDrop, dropA("ip_spoof")},
		{"another link's ipv6 from A's address", ethFrame(macRouter, macEvil, 0x86dd, v6("2001:db8:1::10", "2001:db8:2::1")), verdictDrop, dropA("ip_spoof")},
		{"another link's na for A's address", ethFrame(allNodes, macEvil, 0x86dd, na("2001:db8:1::10", "fe80::66")), verdictDrop, dropA("nd_spoof")},
		{"another link's na for its own", ethFrame(allNodes, macEvil, 0x86dd, na("2001:db8:1::66", "fe80::66")), verdictNext,
			func(n int) counts { return counts{"vlan 1/0 tx": one(n), "flood 1/0 multicast tx": one(n)} }},
		{"another link's ipv4 from the host's address", ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.1", "10.2.0.12")), verdictNext, tx},
		{"another link's arp for another network's container", ethFrame(macRouter, macEvil, 0x0806, arpPacket(2, macEvil, "10.2.0.12", macRouter, "10.2.0.1")), verdictNext, tx},
		{"another network's endpoint, untagged", ethFrame(macRouter, macC, 0x0800, v4("10.2.0.12", "10.1.0.1")), verdictDrop, dropA("mac_spoof")},
		{"an endpoint's spoofed ip", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.99", "10.2.0.12")), verdictDrop, dropA("ip_spoof")},
		{"an endpoint's ra", icmp6From(llA, "ff02::1", routerAdvert(llaOpt(1, macA))), verdictDrop, dropA("ra_guard")},
		{"an endpoint's dhcp server reply", ethFrame(broadcastMAC, macA, 0x0800, ipv4Packet("10.1.0.10", "255.255.255.255", 17, udp(67, 68, 240))), verdictDrop, dropA("dhcp_guard")},
		{"a neighbour's spoofed arp", ethFrame(broadcastMAC, macB, 0x0806, arpPacket(2, macB, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
		{"an endpoint's truncated ipv4", ethFrame(macRouter, macA, 0x0800, longIHL(v4("10.1.0.10", "10.1.0.11")[:20])), verdictDrop, cutShort("parent_egress", "unparsable")},
		{"the host's truncated ipv4", ethFrame(macA, macRouter, 0x0800, longIHL(v4("10.1.0.1", "10.1.0.10")[:20])), verdictNext,
			func(n int) counts { return counts{"vlan 1/0 tx": one(n), "malformed parent_egress": one(n)} }},
	})
}

// TestParentEgressClaimsAllowed: a link that is no endpoint's may send
// with the address of the host's own row (a shim's: the parent answering
// ARP for it too) where no gateway is pinned (TestParentEgressShimClaim:
// where one is), and with the IP source of an endpoint whose network
// allows a router (the host forwarding for it), but not its ARP.
func TestParentEgressClaimsAllowed(t *testing.T) {
	d := newTestDatapath(t)
	for _, ep := range []Endpoint{
		{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, HostShim: true, IPs: []netip.Addr{netip.MustParseAddr("10.1.0.2")}},
		{NetnsCookie: testCookie + 1, Ifindex: 1, MAC: macB, NetworkID: netA, Allow: AllowRouter, IPs: []netip.Addr{netip.MustParseAddr("10.1.0.11")}},
	} {
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	tx := func(n int) counts { return counts{"vlan 1/0 tx": one(n)} }
	runCases(t, d, "parent_egress", []progCase{
		{"the parent's arp for the shim's address", ethFrame(macRouter, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.2", macRouter, "10.1.0.1")), verdictNext, tx},
		{"forwarded for a router's endpoint", ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.11", "10.2.0.12")), verdictNext, tx},
		{"arp for a router's endpoint", ethFrame(macRouter, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.11", macRouter, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
	})
}

// TestParentEgressShimClaim: where the network's gateways are pinned (so
// the host's links on the parent are known), the host shim's address is
// pinned like a gateway's: a link that is neither an endpoint nor the
// host's (a container's nested link) may not claim it toward the wire
// (ARP sender, NA target, IP source); the parent may (it answers ARP for
// the host's addresses). With nothing pinned, as before: anyone may.
func TestParentEgressShimClaim(t *testing.T) {
	d := newTestDatapath(t)
	shim := Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, HostShim: true,
		IPs: []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("2001:db8:1::2")}}
	if err := d.SetEndpoint(shim); err != nil {
		t.Fatal(err)
	}
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.SetGateways(netA, Gateways{ParentMAC: macRouter, Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1")}}); err != nil {
		t.Fatal(err)
	}
	tx := func(n int) counts { return counts{"vlan 1/0 tx": one(n)} }
	bcast := func(n int) counts { return counts{"vlan 1/0 tx": one(n), "flood 1/0 broadcast tx": one(n)} }
	shimNA := func(src net.HardwareAddr) []byte {
		return ethFrame(allNodes, src, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 58, neighborAdvert("2001:db8:1::2", src)))
	}
	nested := []progCase{
		{"a nested link's arp reply for the shim's address", ethFrame(macRouter, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.2", macRouter, "10.1.0.66")), verdictDrop, dropA("arp_spoof")},
		{"a nested link's gratuitous arp for the shim's address", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(1, macEvil, "10.1.0.2", make([]byte, 6), "10.1.0.2")), verdictDrop, dropA("arp_spoof")},
		{"a nested link's ipv4 from the shim's address", ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.2", "10.1.0.66")), verdictDrop, dropA("ip_spoof")},
		{"a nested link's na for the shim's ipv6 address", shimNA(macEvil), verdictDrop, dropA("nd_spoof")},
		{"the parent's mac over a nested link's sender in the arp", ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(2, macEvil, "10.1.0.2", broadcastMAC, "10.1.0.2")), verdictDrop, dropA("arp_spoof")},
	}
	runCases(t, d, "parent_egress", append(nested, []progCase{
		{"the parent's arp reply for the shim's address", ethFrame(macEvil, macRouter, 0x0806, arpPacket(2, macRouter, "10.1.0.2", macEvil, "10.1.0.66")), verdictNext, tx},
		{"the parent's gratuitous arp for the shim's address", ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.2", make([]byte, 6), "10.1.0.2")), verdictNext, bcast},
		{"the parent's ipv4 from the shim's address", ethFrame(macEvil, macRouter, 0x0800, v4("10.1.0.2", "10.1.0.66")), verdictNext, tx},
	}...))
	if err := d.SetGateways(netA, Gateways{}); err != nil { // nothing pinned: the host's links unknown
		t.Fatal(err)
	}
	var unpinned []progCase
	for _, c := range nested[:4] {
		unpinned = append(unpinned, progCase{c.name + ", nothing pinned", c.frame, verdictNext, tx})
	}
	unpinned[1].want = bcast
	unpinned[3].want = func(n int) counts { return counts{"vlan 1/0 tx": one(n), "flood 1/0 multicast tx": one(n)} }
	runCases(t, d, "parent_egress", unpinned)
}

// TestParentEgressGateways: no link but the host's (the parent, a host
// link named: their MACs in the frame and in the ARP body) may send as or
// claim a gateway of the parent's network toward the wire (ARP sender, NA
// target, IP source); everything passes on a network without gateways
// pinned.
func TestParentEgressGateways(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	macVM, macVRRP := mac("02:00:00:00:00:77"), mac("00:00:5e:00:01:07") // a macvtap's, keepalived's use_vmac link's
	gws := Gateways{ParentMAC: macRouter, HostLinks: []net.HardwareAddr{macVM, macVRRP}, Addrs: []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.1.1"),
		netip.MustParseAddr("2001:db8:1::1")}}
	if err := d.SetGateways(netA, gws); err != nil {
		t.Fatal(err)
	}
	tx := func(n int) counts { return counts{"vlan 1/0 tx": one(n)} }
	bcast := func(n int) counts { return counts{"vlan 1/0 tx": one(n), "flood 1/0 broadcast tx": one(n)} }
	mcast := func(n int) counts { return counts{"vlan 1/0 tx": one(n), "flood 1/0 multicast tx": one(n)} }
	gwNA := func(tlla net.HardwareAddr) []byte {
		return ipv6Packet("fe80::1", "ff02::1", 58, neighborAdvert("2001:db8:1::1", tlla))
	}
	gwNS := func(slla net.HardwareAddr) []byte {
		return ipv6Packet("2001:db8:1::1", "ff02::1:ff00:66", 58, neighborSolicit("2001:db8:1::66", llaOpt(1, slla)))
	}
	seven, gwNA7 := extChain(7, 58, neighborAdvert("2001:db8:1::1", macEvil))
	gwNAHidden := func(src net.HardwareAddr) []byte {
		return ethFrame(allNodes, src, 0x86dd, ipv6Packet("fe80::66", "ff02::1", seven, gwNA7))
	}
	gwNAFrag := ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 44, fragment(0, 58, neighborAdvert("2001:db8:1::1", macEvil))))
	cases := []progCase{
		{"another link's arp reply for the gateway", ethFrame(macRouter, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.1", macRouter, "10.1.0.66")), verdictDrop, dropA("arp_spoof")},
		{"another link's gratuitous arp for the second gateway", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(1, macEvil, "10.1.1.1", make([]byte, 6), "10.1.1.1")), verdictDrop, dropA("arp_spoof")},
		{"the parent's mac over another sender in the arp", ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(2, macEvil, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
		{"another link's na for the ipv6 gateway", ethFrame(allNodes, macEvil, 0x86dd, na("2001:db8:1::1", "fe80::66")), verdictDrop, dropA("nd_spoof")},
		{"the parent's arp for the gateway", ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(2, macRouter, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictNext, bcast},
		{"the parent's na for the ipv6 gateway", ethFrame(allNodes, macRouter, 0x86dd, gwNA(macRouter)), verdictNext, mcast},
		{"the parent's na for the ipv6 gateway without options", ethFrame(allNodes, macRouter, 0x86dd, gwNA(nil)), verdictNext, mcast},
		{"the parent's na for the ipv6 gateway naming a container", ethFrame(allNodes, macRouter, 0x86dd, na("2001:db8:1::1", "fe80::1")), verdictDrop, dropA("nd_spoof")},
		{"the parent's na for the ipv6 gateway naming another link", ethFrame(allNodes, macRouter, 0x86dd, gwNA(macEvil)), verdictDrop, dropA("nd_spoof")},
		{"the parent's solicitation from the gateway's address", ethFrame(allNodes, macRouter, 0x86dd, gwNS(macRouter)), verdictNext, mcast},
		{"the parent's solicitation from the gateway's address naming another link", ethFrame(allNodes, macRouter, 0x86dd, gwNS(macEvil)), verdictDrop, dropA("nd_spoof")},
		{"another link's arp for an address no one pinned", ethFrame(macRouter, macEvil, 0x0806, arpPacket(2, macEvil, "10.1.0.66", macRouter, "10.1.0.1")), verdictNext, tx},
		{"another link's arp request to the gateway", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(1, macEvil, "10.1.0.66", make([]byte, 6), "10.1.0.1")), verdictNext, bcast},
		{"another link's ipv4 from the gateway's address", ethFrame(macRouter, macEvil, 0x0800, v4("10.1.0.1", "10.2.0.12")), verdictDrop, dropA("ip_spoof")},
		{"another link's ipv6 from the gateway's address", ethFrame(macRouter, macEvil, 0x86dd, v6("2001:db8:1::1", "2001:db8:2::1")), verdictDrop, dropA("ip_spoof")},
		{"another link's solicitation from the gateway's address", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("2001:db8:1::1", "ff02::1:ff00:66", 58, neighborSolicit("2001:db8:1::66", llaOpt(1, macEvil)))), verdictDrop, dropA("ip_spoof")},
		{"the parent's ipv4 from the gateway's address", ethFrame(macEvil, macRouter, 0x0800, v4("10.1.0.1", "10.2.0.12")), verdictNext, tx},
		{"the parent's ipv6 from the gateway's address", ethFrame(macEvil, macRouter, 0x86dd, v6("2001:db8:1::1", "2001:db8:2::1")), verdictNext, tx},
		{"a host link's arp reply for the gateway", ethFrame(macRouter, macVRRP, 0x0806, arpPacket(2, macVRRP, "10.1.0.1", macRouter, "10.1.0.66")), verdictNext, tx},
		{"a host link's ipv4 from the gateway's address", ethFrame(macEvil, macVRRP, 0x0800, v4("10.1.0.1", "10.2.0.12")), verdictNext, tx},
		{"a host link's na for the ipv6 gateway", ethFrame(allNodes, macVRRP, 0x86dd, gwNA(macVRRP)), verdictNext, mcast},
		{"a host link's na for the ipv6 gateway naming another link", ethFrame(allNodes, macVRRP, 0x86dd, gwNA(macEvil)), verdictDrop, dropA("nd_spoof")},
		{"a host link's mac over another sender in the arp", ethFrame(broadcastMAC, macVRRP, 0x0806, arpPacket(2, macEvil, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
		{"another link's mac over a host link's sender in the arp", ethFrame(broadcastMAC, macEvil, 0x0806, arpPacket(2, macVM, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictDrop, dropA("arp_spoof")},
		{"the first host link's arp for the gateway", ethFrame(broadcastMAC, macVM, 0x0806, arpPacket(2, macVM, "10.1.0.1", broadcastMAC, "10.1.0.1")), verdictNext, bcast},
		{"another link's na for the gateway behind seven extension headers", gwNAHidden(macEvil), verdictDrop, dropA("unparsable")},
		{"another link's na for the gateway in a first fragment", gwNAFrag, verdictDrop, dropA("unparsable")},
		{"the parent's packet behind seven extension headers", gwNAHidden(macRouter), verdictNext, mcast},
		{"a host link's packet behind seven extension headers", gwNAHidden(macVRRP), verdictNext, mcast},
	}
	runCases(t, d, "parent_egress", cases)
	// Unpinned (the network forgotten, as when it is removed): they pass.
	if err := d.SetGateways(netA, Gateways{}); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "parent_egress", []progCase{
		{"another link's arp reply for an unpinned gateway", cases[0].frame, verdictNext, tx},
		{"another link's packet behind seven extension headers, no gateway pinned", gwNAHidden(macEvil), verdictNext, mcast},
	})
	// Pinned IPv4 gateways only: an IPv6 packet no check could read passes.
	if err := d.SetGateways(netA, Gateways{ParentMAC: macRouter, Addrs: gws.Addrs[:2]}); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "parent_egress", []progCase{
		{"another link's packet behind seven extension headers, no ipv6 gateway", gwNAHidden(macEvil), verdictNext, mcast},
	})
	var tooMany []net.HardwareAddr
	for i := range MaxGatewayHostLinks + 1 {
		tooMany = append(tooMany, net.HardwareAddr{0x02, 0, 0, 0, 0x77, byte(i)})
	}
	if err := d.SetGateways(netA, Gateways{ParentMAC: macRouter, HostLinks: tooMany[:MaxGatewayHostLinks], Addrs: gws.Addrs}); err != nil {
		t.Errorf("SetGateways with %d host links: %v", MaxGatewayHostLinks, err)
	}
	for _, bad := range []Gateways{
		{ParentMAC: macRouter, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.2.1"),
			netip.MustParseAddr("10.0.3.1"), netip.MustParseAddr("10.0.4.1")}},
		{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		{ParentMAC: macRouter, Addrs: []netip.Addr{{}}},
		{ParentMAC: macRouter, Addrs: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}},
		{ParentMAC: macRouter, HostLinks: []net.HardwareAddr{macA[:4]}, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		{ParentMAC: macRouter, HostLinks: tooMany, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
	} {
		if err := d.SetGateways(netA, bad); err == nil {
			t.Errorf("SetGateways(%v): no error", bad)
		}
	}
}

// TestParentVLAN: untagged frames on a sub-interface parent count under its
// VLAN; a link without a parents entry (a trunk) counts per VLAN only.
func TestParentVLAN(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, 7, 50); err != nil {
		t.Fatal(err)
	}
	bcast := ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", make([]byte, 6), "10.1.0.10"))
	hairpin := ethFrame(macB, macRouter, 0x0800, v4("10.1.0.10", "10.1.0.11"))
	runCases(t, d, "parent_ingress", []progCase{
		{"sub-interface broadcast", bcast, verdictNext, func(n int) counts {
			return counts{"vlan 1/50 rx": one(n), "flood 7/50 broadcast rx": one(n)}
		}},
		{"sub-interface hairpin", hairpin, verdictNext, func(n int) counts {
			return counts{"vlan 1/50 rx": one(n), "hairpin 7/50": one(n)}
		}},
		// A frame the wire tagged twice (outer 50, inner 60) reaches the
		// sub-interface with its inner tag: VLAN 50's, one counter.
		{"sub-interface inner tag", tagged(bcast, 0x8100, 60), verdictNext, func(n int) counts { return counts{"vlan 1/50 rx": one(n)} }},
	})
	if err := d.DeleteParent(1); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "parent_ingress", []progCase{
		{"trunk broadcast", bcast, verdictNext, func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }},
		{"trunk tagged hairpin", tagged(hairpin, 0x8100, 50), verdictNext, func(n int) counts { return counts{"vlan 1/50 rx": one(n)} }},
	})
}

// TestRetireParent: a network's untagged frames on its parent, counted in
// its share while it lives, stay in the link's per-VLAN counters when the
// network goes and the link stays a trunk (RetireParent): the series does
// not go down (a counter reset to Prometheus), goes on from there, and
// goes with the link (ForgetLinks).
func TestRetireParent(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	bcast := ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", make([]byte, 6), "10.1.0.10"))
	trunk := []progCase{{"trunk broadcast", bcast, verdictNext, func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }}}
	runCases(t, d, "parent_ingress", trunk) // the programs' own entry
	for _, id := range []uint32{7, 8} {     // two networks in turn on link 1
		if err := d.SetParent(1, id, 0); err != nil {
			t.Fatal(err)
		}
		runCases(t, d, "parent_ingress", []progCase{{"own broadcast", bcast, verdictNext, func(n int) counts {
			return counts{"vlan 1/0 rx": one(n), fmt.Sprintf("flood %d/0 broadcast rx", id): one(n)}
		}}})
		before := snapshot(t, d)["vlan 1/0 rx"]
		if err := errors.Join(d.RetireParent(1), d.ForgetNetwork(id)); err != nil {
			t.Fatal(err)
		}
		if got := snapshot(t, d)["vlan 1/0 rx"]; got != before || got.Packets < 2 {
			t.Fatalf("network %d gone: vlan 1/0 rx %+v, want %+v (the link's and the network's frames)", id, got, before)
		}
		runCases(t, d, "parent_ingress", trunk)
	}
	if got := snapshot(t, d)["vlan 1/0 rx"]; got.Packets != 5 {
		t.Errorf("vlan 1/0 rx %d packets, want 5: 3 as a trunk, 1 of each network", got.Packets)
	}
	if err := d.ForgetLinks(func(i int) bool { return i == 1 }); err != nil {
		t.Fatal(err)
	}
	if got, ok := snapshot(t, d)["vlan 1/0 rx"]; ok {
		t.Errorf("link 1 forgotten: vlan 1/0 rx %+v left", got)
	}
}
