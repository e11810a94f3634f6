package probe

import (
	"encoding/binary"
	"net"
	"net/netip"
)

const (
	ethLen   = 14
	ipv6Len  = 40
	icmpNS   = 135
	icmpNA   = 136
	nsLen    = 24 // type, code, checksum, reserved, target
	arpLen   = 28
	arpReply = 2
)

// arpProbe is an RFC 5227 probe for a: a broadcast ARP request whose
// sender IP is 0.0.0.0.
func arpProbe(mac net.HardwareAddr, a netip.Addr) []byte {
	f := make([]byte, ethLen+arpLen)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	p := f[ethLen:]
	binary.BigEndian.PutUint16(p[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], 1) // request
	copy(p[8:14], mac)
	// sender IP (14:18) and target MAC (18:24) stay zero
	t := a.As4()
	copy(p[24:28], t[:])
	return f
}

// nsProbe is an RFC 4862 DAD solicitation for a: from ::, to a's
// solicited-node group, without a source link-layer option.
func nsProbe(mac net.HardwareAddr, a netip.Addr) []byte {
	t := a.As16()
	group := [16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]}
	f := make([]byte, ethLen+ipv6Len+nsLen)
	copy(f[0:6], []byte{0x33, 0x33, 0xff, t[13], t[14], t[15]})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[ethLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], nsLen)
	ip[6], ip[7] = 58, 255 // ICMPv6, hop limit
	// source (8:24) is ::
	copy(ip[24:40], group[:])
	icmp := ip[ipv6Len:]
	icmp[0] = icmpNS
	copy(icmp[8:24], t[:])
	binary.BigEndian.PutUint16(icmp[2:], icmpChecksum([16]byte{}, group, icmp))
	return f
}

// icmpChecksum is ICMPv6's checksum of msg (its checksum field zero)
// with the IPv6 pseudo-header of src and dst.
func icmpChecksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(msg)) + 58
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// answer returns the address a frame says is in use: the sender IP of
// an ARP reply or of a request from a host that has it (not a probe),
// the target of a neighbour advertisement.
func answer(f []byte, proto uint16) (netip.Addr, bool) {
	if len(f) < ethLen {
		return netip.Addr{}, false
	}
	if proto == 0x0806 {
		p := f[ethLen:]
		if len(p) < arpLen || binary.BigEndian.Uint16(p[2:]) != 0x0800 || p[4] != 6 || p[5] != 4 {
			return netip.Addr{}, false
		}
		a := netip.AddrFrom4([4]byte(p[14:18]))
		if a.IsUnspecified() {
			return netip.Addr{}, false
		}
		return a, binary.BigEndian.Uint16(p[6:]) == arpReply || a == netip.AddrFrom4([4]byte(p[24:28]))
	}
	ip := f[ethLen:]
	if len(ip) < ipv6Len+nsLen || ip[0]>>4 != 6 || ip[6] != 58 || ip[ipv6Len] != icmpNA {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(ip[ipv6Len+8 : ipv6Len+24])), true
}
