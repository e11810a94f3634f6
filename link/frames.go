package link

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The announcements of an endpoint's addresses, sent by announce from a
// packet socket on its link: the frames the kernel sends for arp_notify
// and ndisc_notify (RFC 5227, RFC 4861 section 7.2.6).

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodesMAC  = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	allNodesAddr = netip.MustParseAddr("ff02::1")
)

// gratuitousARP builds an Ethernet frame holding a broadcast gratuitous
// ARP for ip at mac: the RFC 5227 announcement (a request whose sender
// and target addresses are both ip), or with reply a gratuitous reply
// (RFC 5944 section 4.6: target ip at mac too). It returns nil unless ip
// is IPv4 and mac is 6 bytes.
//
// The wire gets the request, which every kind of neighbour takes. The
// endpoints on the parent, which in bridge mode all receive what one
// sends, get the reply: a Linux host routes the target of every request
// it receives (ip_route_input in arp_process, a dst allocated each time)
// before it looks at its neighbour table, while for a reply it looks at
// the table only; both update an entry the receiver holds for ip
// (override, as gratuitous) and both make one where arp_accept is set.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr, reply bool) []byte {
	if !ip.Is4() || len(mac) != 6 {
		return nil
	}
	b := make([]byte, 0, 42)
	b = append(b, broadcastMAC...)
	b = append(b, mac...)
	b = binary.BigEndian.AppendUint16(b, 0x0806) // ARP
	b = binary.BigEndian.AppendUint16(b, 1)      // hardware: Ethernet
	b = binary.BigEndian.AppendUint16(b, 0x0800) // protocol: IPv4
	b = append(b, 6, 4)
	op, target := uint16(1), net.HardwareAddr{0, 0, 0, 0, 0, 0}
	if reply {
		op, target = 2, mac // a gratuitous reply's target MAC is its sender's
	}
	b = binary.BigEndian.AppendUint16(b, op)
	v4 := ip.As4()
	b = append(b, mac...)
	b = append(b, v4[:]...)
	b = append(b, target...)
	return append(b, v4[:]...)
}

// unsolicitedNA builds an Ethernet frame holding an ICMPv6 neighbour
// advertisement for ip from ip to ff02::1 with the override flag and the
// target link-layer address option (RFC 4861 section 7.2.6). It returns nil
// unless ip is IPv6 and mac is 6 bytes.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	if !ip.Is6() || ip.Is4In6() || len(mac) != 6 {
		return nil
	}
	icmp := make([]byte, 0, 32)
	icmp = append(icmp, 136, 0, 0, 0)                      // type NA, code, checksum
	icmp = binary.BigEndian.AppendUint32(icmp, 0x20000000) // O (override) flag
	src := ip.As16()
	icmp = append(icmp, src[:]...)
	icmp = append(icmp, 2, 1) // option: target link-layer address, 8 bytes
	icmp = append(icmp, mac...)
	dst := allNodesAddr.As16()
	binary.BigEndian.PutUint16(icmp[2:], icmpv6Checksum(src, dst, icmp))

	b := make([]byte, 0, 14+40+len(icmp))
	b = append(b, allNodesMAC...)
	b = append(b, mac...)
	b = binary.BigEndian.AppendUint16(b, 0x86dd) // IPv6
	b = append(b, 0x60, 0, 0, 0)                 // version 6, traffic class 0, flow 0
	b = binary.BigEndian.AppendUint16(b, uint16(len(icmp)))
	b = append(b, unix.IPPROTO_ICMPV6, 255) // next header, hop limit 255
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	return append(b, icmp...)
}

// icmpv6Checksum is the internet checksum over the IPv6 pseudo-header and
// the ICMPv6 message (whose checksum field must be zero).
func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var pseudo [8]byte
	binary.BigEndian.PutUint32(pseudo[0:], uint32(len(msg)))
	pseudo[7] = unix.IPPROTO_ICMPV6
	add(pseudo[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
