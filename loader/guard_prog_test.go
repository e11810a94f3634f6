package loader

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
)

// First-hop frame builders (checksums zero: the programs never read them).

// llaOpt is a source (1) or target (2) link-layer address option.
func llaOpt(typ byte, m net.HardwareAddr) []byte { return append([]byte{typ, 1}, m...) }

func routerAdvert(opts ...[]byte) []byte {
	return withOpts([]byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0}, opts)
}

func routerSolicit(opts ...[]byte) []byte { return withOpts([]byte{133, 0, 0, 0, 0, 0, 0, 0}, opts) }

func neighborSolicit(target string, opts ...[]byte) []byte {
	a := ipv6Addr(target)
	return withOpts(append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, a[:]...), opts)
}

func redirect(target, dst string) []byte {
	t, d := ipv6Addr(target), ipv6Addr(dst)
	return append(append([]byte{137, 0, 0, 0, 0, 0, 0, 0}, t[:]...), d[:]...)
}

func ipv6Addr(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func withOpts(b []byte, opts [][]byte) []byte {
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

// nonces are n ND nonce options (type 14), each 8 bytes.
func nonces(n int) [][]byte {
	var out [][]byte
	for range n {
		out = append(out, []byte{14, 1, 1, 2, 3, 4, 5, 6})
	}
	return out
}

func udp(sport, dport uint16, n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	return b
}

// extChain puts n extension headers (hop-by-hop first, then destination
// options; 8 bytes each, PadN) in front of payload of protocol next; it
// returns the first header's protocol and the bytes.
func extChain(n int, next byte, payload []byte) (byte, []byte) {
	for i := n - 1; i >= 0; i-- {
		payload = append([]byte{next, 0, 1, 4, 0, 0, 0, 0}, payload...)
		next = 60
		if i == 0 {
			next = 0
		}
	}
	return next, payload
}

// fragment puts an IPv6 fragment header (offset in 8-byte units, more
// fragments set) in front of payload of protocol next.
func fragment(offset uint16, next byte, payload []byte) []byte {
	h := []byte{next, 0, 0, 0, 0, 0, 0, 1}
	binary.BigEndian.PutUint16(h[2:], offset<<3|1)
	return append(h, payload...)
}

var (
	allNodes   = mac("33:33:00:00:00:01")
	dhcp6Mcast = mac("33:33:00:01:00:02")
)

func icmp6From(src, dst string, body []byte) []byte {
	return ethFrame(allNodes, macA, 0x86dd, ipv6Packet(src, dst, 58, body))
}

func TestFirstHopGuards(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	unparsable := dropA("unparsable")
	hbh, ra := extChain(1, 58, routerAdvert())
	six, echo6 := extChain(6, 58, icmpEcho(128, 8))
	seven, echo7 := extChain(7, 58, icmpEcho(128, 8))
	cases := []progCase{
		{"rs own slla", icmp6From(llA, "ff02::2", routerSolicit(llaOpt(1, macA))), verdictNext, txA},
		{"ns own slla", icmp6From(llA, "ff02::1:ff00:1", neighborSolicit("fe80::1", llaOpt(1, macA))), verdictNext, txA},
		{"ns for dad", icmp6From("::", "ff02::1:ff00:10", neighborSolicit("2001:db8:1::10")), verdictNext, txA},
		{"ns for dad of its link-local", icmp6From("::", "ff02::1:ff00:10", neighborSolicit(llA)), verdictNext, txA},
		{"ns with 12 options", icmp6From(llA, "ff02::1:ff00:1", neighborSolicit("fe80::1", append(nonces(11), llaOpt(1, macA))...)), verdictNext, txA},
		{"six extension headers", ethFrame(macRouter, macA, 0x86dd, ipv6Packet("2001:db8:1::10", "2001:db8:2::1", six, echo6)), verdictNext, txA},
		{"dhcp client v4", dhcp4(t, dhcpv4.MessageTypeDiscover, macA), verdictNext, txA},
		{"dhcp client v6", dhcp6(t, dhcpv6.MessageTypeSolicit, duidLL(macA)), verdictNext, txA},
		{"later fragment", ethFrame(macRouter, macA, 0x86dd, ipv6Packet("2001:db8:1::10", "2001:db8:2::1", 44, fragment(8, 17, udp(547, 546, 8)))), verdictNext, txA},
		{"ra", icmp6From(llA, "ff02::1", routerAdvert(llaOpt(1, macA))), verdictDrop, dropA("ra_guard")},
		{"ra behind hop-by-hop", ethFrame(allNodes, macA, 0x86dd, ipv6Packet(llA, "ff02::1", hbh, ra)), verdictDrop, dropA("ra_guard")},
		{"redirect", ethFrame(macB, macA, 0x86dd, ipv6Packet(llA, "fe80::b", 58, redirect("fe80::fe", "2001:db8:9::1"))), verdictDrop, dropA("ra_guard")},
		{"rs foreign slla", icmp6From(llA, "ff02::2", routerSolicit(llaOpt(1, macB))), verdictDrop, dropA("nd_spoof")},
		{"ns foreign slla", icmp6From(llA, "ff02::1:ff00:1", neighborSolicit("fe80::1", llaOpt(1, macRouter))), verdictDrop, dropA("nd_spoof")},
		{"ns for dad of a neighbour's link-local", icmp6From("::", "ff02::1:ff00:10", neighborSolicit(llB)), verdictDrop, dropA("nd_spoof")},
		{"ns for dad of the router's address", icmp6From("::", "ff02::1:ff00:1", neighborSolicit("fe80::1")), verdictDrop, dropA("nd_spoof")},
		{"ns foreign slla after a nonce", icmp6From(llA, "ff02::1:ff00:1", neighborSolicit("fe80::1", append(nonces(1), llaOpt(1, macRouter))...)), verdictDrop, dropA("nd_spoof")},
		{"ns slla of two units", icmp6From(llA, "ff02::1:ff00:1", neighborSolicit("fe80::1", append([]byte{1, 2}, make([]byte, 14)...))), verdictDrop, dropA("nd_spoof")},
		{"dhcp server v4", ethFrame(broadcastMAC, macA, 0x0800, ipv4Packet("10.1.0.10", "255.255.255.255", 17, udp(67, 68, 240))), verdictDrop, dropA("dhcp_guard")},
		{"dhcp server v6", ethFrame(macB, macA, 0x86dd, ipv6Packet(llA, "fe80::b", 17, udp(547, 546, 40))), verdictDrop, dropA("dhcp_guard")},
		{"dhcp reply from another port v4", ethFrame(broadcastMAC, macA, 0x0800, ipv4Packet("10.1.0.10", "255.255.255.255", 17, udp(1067, 68, 240))), verdictDrop, dropA("dhcp_guard")},
		{"dhcp reply from another port v6", ethFrame(macB, macA, 0x86dd, ipv6Packet(llA, "fe80::b", 17, udp(5470, 546, 40))), verdictDrop, dropA("dhcp_guard")},
		{"dhcp server v6 first fragment", ethFrame(macB, macA, 0x86dd, ipv6Packet(llA, "fe80::b", 44, fragment(0, 17, udp(547, 546, 40)))), verdictDrop, dropA("dhcp_guard")},
		{"fragmented echo", ethFrame(macRouter, macA, 0x86dd, ipv6Packet("2001:db8:1::10", "2001:db8:2::1", 44, fragment(0, 58, icmpEcho(128, 32)))), verdictNext, txA},
		{"fragmented na, own target", ethFrame(allNodes, macA, 0x86dd, ipv6Packet(llA, "ff02::1", 44, fragment(0, 58, neighborAdvert("2001:db8:1::10", macA)))), verdictDrop, unparsable},
		{"fragmented icmpv6 without its type", ethFrame(allNodes, macA, 0x86dd, ipv6Packet(llA, "ff02::1", 44, fragment(0, 58, nil))), verdictDrop, unparsable},
		{"unspecified source on udp", ethFrame(macRouter, macA, 0x86dd, ipv6Packet("::", "2001:db8:2::1", 17, udp(5000, 53, 40))), verdictDrop, dropA("ip_spoof")},
		{"unspecified source on a later fragment", ethFrame(macRouter, macA, 0x86dd, ipv6Packet("::", "2001:db8:2::1", 44, fragment(8, 17, udp(5000, 53, 8)))), verdictDrop, dropA("ip_spoof")},
		{"zero-length nd option", icmp6From(llA, "ff02::1:ff00:1", neighborSolicit("fe80::1", []byte{14, 0, 0, 0, 0, 0, 0, 0})), verdictDrop, unparsable},
		{"ns with 13 options", icmp6From(llA, "ff02::1:ff00:1", neighborSolicit("fe80::1", append(nonces(12), llaOpt(1, macRouter))...)), verdictDrop, unparsable},
		{"seven extension headers", ethFrame(macRouter, macA, 0x86dd, ipv6Packet("2001:db8:1::10", "2001:db8:2::1", seven, echo7)), verdictDrop, unparsable},
	}
	runCases(t, d, "ep_egress", cases)

	// A router and DHCP server container: its messages pass, its
	// link-layer options are still checked.
	if err := d.SetEndpoint(Endpoint{NetnsCookie: testCookie, Ifindex: 1, MAC: macA, NetworkID: netA,
		IPs: addrs("10.1.0.10", "2001:db8:1::10"), Allow: AllowRouter | AllowDHCPServer}); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "ep_egress", []progCase{
		{"ra allowed", icmp6From(llA, "ff02::1", routerAdvert(llaOpt(1, macA))), verdictNext, txA},
		{"ra allowed, foreign slla", icmp6From(llA, "ff02::1", routerAdvert(llaOpt(1, macRouter))), verdictDrop, dropA("nd_spoof")},
		{"redirect allowed", ethFrame(macB, macA, 0x86dd, ipv6Packet(llA, "fe80::b", 58, redirect("fe80::fe", "2001:db8:9::1"))), verdictNext, txA},
		{"dhcp server v4 allowed", ethFrame(broadcastMAC, macA, 0x0800, ipv4Packet("10.1.0.10", "255.255.255.255", 17, udp(67, 68, 240))), verdictNext, txA},
		{"dhcp server v6 allowed", ethFrame(macB, macA, 0x86dd, ipv6Packet(llA, "fe80::b", 17, udp(547, 546, 40))), verdictNext, txA},
		{"dhcp server from a foreign address", ethFrame(broadcastMAC, macA, 0x0800, ipv4Packet("10.1.0.1", "255.255.255.255", 17, udp(67, 68, 240))), verdictDrop, dropA("ip_spoof")},
	})
}
