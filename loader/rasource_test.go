package loader

import (
	"net"
	"net/netip"
	"testing"
)

// TestRASource: with network 1's RA source set (the router's link-local
// and MAC), a router advertisement or redirect for endpoint A from
// anything else is dropped as ra_source, from the wire or hidden behind an extension
// header; other ICMPv6 from the same host passes. Without a source (never
// set, or lifted: ipv6_ra=ignore) every RA and redirect from the wire is
// dropped as ra_ignore, the router's too, unless it claims a local
// address (nd_spoof); other ND passes.
func TestRASource(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	rxA := func(n int) counts { return counts{"net 1 rx": one(n)} }
	ra := func(src net.HardwareAddr, ll string) []byte {
		return ethFrame(allNodes, src, 0x86dd, ipv6Packet(ll, "ff02::1", 58, routerAdvert(llaOpt(1, src))))
	}
	redir := func(src net.HardwareAddr, ll string) []byte {
		return ethFrame(macA, src, 0x86dd, ipv6Packet(ll, llA, 58, redirect("fe80::fe", "2001:db8:9::1")))
	}
	// A redirect to neighbour B (target = destination, B's MAC in its
	// option), as a router sends between two subnets of the network.
	toB := func(src net.HardwareAddr, ll string) []byte {
		return ethFrame(macA, src, 0x86dd, ipv6Packet(ll, llA, 58, append(redirect(llB, llB), llaOpt(2, macB)...)))
	}
	dstOpts := []byte{58, 0, 1, 4, 0, 0, 0, 0} // next: ICMPv6; a PadN option
	hidden := ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 60, append(dstOpts, routerAdvert()...)))
	none := []progCase{
		{"none: the router's ra", ra(macRouter, "fe80::1"), verdictDrop, dropA("ra_ignore")},
		{"none: a rogue ra", ra(macEvil, "fe80::66"), verdictDrop, dropA("ra_ignore")},
		{"none: a rogue ra behind a destination options header", hidden, verdictDrop, dropA("ra_ignore")},
		{"none: the router's redirect", redir(macRouter, "fe80::1"), verdictDrop, dropA("ra_ignore")},
		{"none: a redirect to a local neighbour", toB(macRouter, "fe80::1"), verdictDrop, dropA("nd_spoof")},
		{"none: the rogue host's ns", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 58, neighborSolicit("fe80::1", llaOpt(1, macEvil)))), verdictNext, rxA},
		{"none: the router's na", ethFrame(allNodes, macRouter, 0x86dd, ipv6Packet("fe80::1", "ff02::1", 58, neighborAdvert("fe80::1", macRouter))), verdictNext, rxA},
	}
	runCasesMark(t, d, "ep_ingress", WireMark, none)
	if err := d.SetRASource(netA, RASource{LL: netip.MustParseAddr("fe80::1"), MAC: macRouter}); err != nil {
		t.Fatal(err)
	}
	runCasesMark(t, d, "ep_ingress", WireMark, []progCase{
		{"the router's ra", ra(macRouter, "fe80::1"), verdictNext, rxA},
		{"a rogue ra", ra(macEvil, "fe80::66"), verdictDrop, dropA("ra_source")},
		{"a rogue ra with the router's link-local", ra(macEvil, "fe80::1"), verdictDrop, dropA("ra_source")},
		{"the router's mac, another link-local", ra(macRouter, "fe80::2"), verdictDrop, dropA("ra_source")},
		{"a rogue ra behind a destination options header", hidden, verdictDrop, dropA("ra_source")},
		{"the router's redirect", redir(macRouter, "fe80::1"), verdictNext, rxA},
		{"a rogue redirect with the router's link-local", redir(macEvil, "fe80::1"), verdictDrop, dropA("ra_source")},
		{"the router's redirect to a local neighbour", toB(macRouter, "fe80::1"), verdictNext, rxA},
		{"a rogue redirect to a local neighbour", toB(macEvil, "fe80::1"), verdictDrop, dropA("nd_spoof")},
		{"the rogue host's ns", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 58, neighborSolicit("fe80::1", llaOpt(1, macEvil)))), verdictNext, rxA},
	})
	if err := d.SetRASource(netA, RASource{MAC: macRouter}); err != nil {
		t.Fatal(err)
	}
	runCasesMark(t, d, "ep_ingress", WireMark, []progCase{
		{"mac only: the router's", ra(macRouter, "fe80::2"), verdictNext, rxA},
		{"mac only: a rogue ra", ra(macEvil, "fe80::1"), verdictDrop, dropA("ra_source")},
	})
	if err := d.SetRASource(netA, RASource{}); err != nil {
		t.Fatal(err)
	}
	runCasesMark(t, d, "ep_ingress", WireMark, none) // lifted
	for _, bad := range []RASource{{LL: netip.MustParseAddr("2001:db8::1")}, {LL: netip.MustParseAddr("10.0.0.1")}, {MAC: mac("01:00:5e:00:00:01")}} {
		if err := d.SetRASource(netA, bad); err == nil {
			t.Errorf("SetRASource(%+v) accepted", bad)
		}
	}
}
