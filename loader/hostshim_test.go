package loader

import (
	"net/netip"
	"testing"
)

// TestHostShimIngress: A is its network's host shim (HostShim). A local
// endpoint's unicast IP frame to it must be for one of its own addresses
// (the link-local included); one for any other address, which the host
// would route or take on another of its addresses, is dropped as
// host_route, counted exactly once, unless the network allows a router;
// so is one in a broadcast or multicast frame unless its IP destination
// is a group too, or a broadcast of a subnet holding the shim's address. ARP, broadcast and multicast IP, and the wire's frames
// are left as they were;
// an ordinary endpoint does not look.
func TestHostShimIngress(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	shim := Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, HostShim: true,
		IPs: []netip.Addr{netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("2001:db8:1::10")}}
	if err := d.SetEndpoint(shim); err != nil {
		t.Fatal(err)
	}
	rows, err := d.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if want := r.MAC.String() == macA.String(); r.HostShim != want {
			t.Errorf("row %s: HostShim %v, want %v", r.MAC, r.HostShim, want)
		}
	}
	rxA := func(n int) counts { return counts{"net 1 rx": one(n)} }
	fromB := func(dst string, payload []byte, typ uint16) []byte { return ethFrame(mac(dst), macB, typ, payload) }
	a := macA.String()
	toShim := []progCase{
		{"to the shim's ipv4 address", fromB(a, v4("10.1.0.11", "10.1.0.10"), 0x0800), verdictNext, rxA},
		{"to the shim's ipv6 address", fromB(a, v6(llB, "2001:db8:1::10"), 0x86dd), verdictNext, rxA},
		{"to the shim's link-local", fromB(a, v6(llB, llA), 0x86dd), verdictNext, rxA},
		{"a unicast ns for the shim's address", fromB(a, ipv6Packet(llB, "2001:db8:1::10", 58, neighborSolicit("2001:db8:1::10", llaOpt(1, macB))), 0x86dd), verdictNext, rxA},
		{"a unicast arp reply", fromB(a, arpPacket(2, macB, "10.1.0.11", macA, "10.1.0.10"), 0x0806), verdictNext, rxA},
		{"a broadcast arp request", fromB("ff:ff:ff:ff:ff:ff", arpPacket(1, macB, "10.1.0.11", make([]byte, 6), "10.9.9.9"), 0x0806), verdictNext, rxA},
		{"a dhcp discover", fromB("ff:ff:ff:ff:ff:ff", ipv4Packet("0.0.0.0", "255.255.255.255", 17, bootpUDP(dhcp4Bytes(t, macB))), 0x0800), verdictNext, rxA},
		{"mdns", fromB("01:00:5e:00:00:fb", ipv4Packet("10.1.0.11", "224.0.0.251", 17, udp(5353, 5353, 40)), 0x0800), verdictNext, rxA},
		{"ipv6 multicast", fromB("33:33:00:00:00:01", v6(llB, "ff02::1"), 0x86dd), verdictNext, rxA},
		{"to the shim's address in a broadcast frame", fromB("ff:ff:ff:ff:ff:ff", v4("10.1.0.11", "10.1.0.10"), 0x0800), verdictNext, rxA},
		{"netbios to the subnet's broadcast", fromB("ff:ff:ff:ff:ff:ff", ipv4Packet("10.1.0.11", "10.1.0.255", 17, udp(137, 137, 40)), 0x0800), verdictNext, rxA},
		{"to a /16's broadcast over the shim's address", fromB("ff:ff:ff:ff:ff:ff", v4("10.1.0.11", "10.1.255.255"), 0x0800), verdictNext, rxA},
	}
	routed := []progCase{
		{"to 8.8.8.8", fromB(a, v4("10.1.0.11", "8.8.8.8"), 0x0800), verdictDrop, dropA("host_route")},
		{"to another network's container", fromB(a, v4("10.1.0.11", "10.2.0.12"), 0x0800), verdictDrop, dropA("host_route")},
		{"to a neighbour's address", fromB(a, v4("10.1.0.11", "10.1.0.11"), 0x0800), verdictDrop, dropA("host_route")},
		{"to a global ipv6 address", fromB(a, v6(llB, "2001:4860:4860::8888"), 0x86dd), verdictDrop, dropA("host_route")},
		{"to another link-local", fromB(a, v6(llB, "fe80::1"), 0x86dd), verdictDrop, dropA("host_route")},
		// The host takes unicast IP in a broadcast frame on any of its
		// addresses (net.ipv4.conf.*.drop_unicast_in_l2_multicast is 0).
		{"to 8.8.8.8 in a broadcast frame", fromB("ff:ff:ff:ff:ff:ff", v4("10.1.0.11", "8.8.8.8"), 0x0800), verdictDrop, dropA("host_route")},
		{"to another network's container in a multicast frame", fromB("01:00:5e:00:00:fb", v4("10.1.0.11", "10.2.0.12"), 0x0800), verdictDrop, dropA("host_route")},
		{"to a global ipv6 address in a multicast frame", fromB("33:33:00:00:00:01", v6(llB, "2001:4860:4860::8888"), 0x86dd), verdictDrop, dropA("host_route")},
		{"to another network's broadcast in a broadcast frame", fromB("ff:ff:ff:ff:ff:ff", v4("10.1.0.11", "10.2.0.255"), 0x0800), verdictDrop, dropA("host_route")},
		{"to a neighbour's address in a broadcast frame", fromB("ff:ff:ff:ff:ff:ff", v4("10.1.0.11", "10.1.0.11"), 0x0800), verdictDrop, dropA("host_route")},
	}
	runCases(t, d, "ep_ingress", append(toShim, routed...))
	// The wire's frames to the shim are not a local endpoint's: as before.
	runCasesMark(t, d, "ep_ingress", WireMark, []progCase{
		{"from the wire, another destination", ethFrame(macA, macRouter, 0x0800, v4("198.51.100.7", "8.8.8.8")), verdictNext, rxA},
	})
	// A spoofed source is still ip_spoof, not host_route.
	runCases(t, d, "ep_ingress", []progCase{
		{"spoofed source to 8.8.8.8", fromB(a, v4("10.1.0.99", "8.8.8.8"), 0x0800), verdictDrop, dropA("ip_spoof")},
	})

	// -o allow_router=true: the host is the containers' router.
	shim.Allow = AllowRouter
	if err := d.SetEndpoint(shim); err != nil {
		t.Fatal(err)
	}
	t.Run("allow_router", func(t *testing.T) {
		var cases []progCase
		for _, c := range append(toShim, routed...) {
			cases = append(cases, progCase{c.name, c.frame, verdictNext, rxA})
		}
		runCases(t, d, "ep_ingress", cases)
	})

	// An ordinary endpoint: a foreign destination is its own business.
	shim.Allow, shim.HostShim = 0, false
	if err := d.SetEndpoint(shim); err != nil {
		t.Fatal(err)
	}
	t.Run("ordinary endpoint", func(t *testing.T) {
		var cases []progCase
		for _, c := range routed {
			cases = append(cases, progCase{c.name, c.frame, verdictNext, rxA})
		}
		runCases(t, d, "ep_ingress", cases)
	})
}

// TestHostShimEgressNext: ep_egress's pass is the last word on a
// container's link (verdictPass), but on the host shim, whose hook is the
// host's, it lets the host's own programs after it run (verdictNext).
func TestHostShimEgressNext(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		t.Fatal(err)
	}
	own := ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12"))
	for _, c := range []struct {
		hostShim bool
		want     uint32
	}{{false, verdictPass}, {true, verdictNext}, {false, verdictPass}} {
		ep := Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA, HostShim: c.hostShim,
			IPs: []netip.Addr{netip.MustParseAddr("10.1.0.10")}}
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, d)
		if got := run(t, p.egress, own); got != c.want {
			t.Errorf("host shim %v: ep_egress passed its own frame with %#x, want %#x", c.hostShim, got, c.want)
		}
		expectDelta(t, d, before, txA(len(own)))
	}
}
