package link_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestGratuitousARPFrame(t *testing.T) {
	m := net.HardwareAddr{0x02, 0x42, 0xac, 0x10, 0x56, 0x0a}
	f := gratuitousARP(m, netip.MustParseAddr("172.16.86.10"))
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x10, 0x56, 0x0a, 0x08, 0x06, // Ethernet
		0, 1, 0x08, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
		0x02, 0x42, 0xac, 0x10, 0x56, 0x0a, 172, 16, 86, 10, // sender
		0, 0, 0, 0, 0, 0, 172, 16, 86, 10, // target: our own address
	}
	if !bytes.Equal(f, want) {
		t.Errorf("GratuitousARP =\n% x\nwant\n% x", f, want)
	}
	if gratuitousARP(m, netip.MustParseAddr("2001:db8::1")) != nil {
		t.Error("GratuitousARP of an IPv6 address is not nil")
	}
}

func TestUnsolicitedNAFrame(t *testing.T) {
	m := net.HardwareAddr{0x02, 0x42, 0xac, 0x10, 0x56, 0x0a}
	ip := netip.MustParseAddr("2001:db8:abc8::10")
	f := unsolicitedNA(m, ip)
	if len(f) != 14+40+32 {
		t.Fatalf("frame is %d bytes; want 86", len(f))
	}
	ip6, icmp := f[14:54], f[54:]
	checks := []struct {
		what      string
		got, want any
	}{
		{"destination MAC", net.HardwareAddr(f[0:6]).String(), "33:33:00:00:00:01"},
		{"ethertype", binary.BigEndian.Uint16(f[12:]), uint16(0x86dd)},
		{"payload length", binary.BigEndian.Uint16(ip6[4:]), uint16(32)},
		{"next header", ip6[6], byte(58)},
		{"hop limit", ip6[7], byte(255)},
		{"source", netip.AddrFrom16([16]byte(ip6[8:24])), ip},
		{"destination", netip.AddrFrom16([16]byte(ip6[24:40])).String(), "ff02::1"},
		{"type", icmp[0], byte(136)},
		{"flags", binary.BigEndian.Uint32(icmp[4:]), uint32(0x20000000)},
		{"target", netip.AddrFrom16([16]byte(icmp[8:24])), ip},
		{"option", [2]byte(icmp[24:26]), [2]byte{2, 1}},
		{"option MAC", net.HardwareAddr(icmp[26:32]).String(), m.String()},
		{"checksum verifies", verify6(ip6, icmp), uint16(0)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.what, c.got, c.want)
		}
	}
	if unsolicitedNA(m, netip.MustParseAddr("10.0.0.1")) != nil {
		t.Error("UnsolicitedNA of an IPv4 address is not nil")
	}
}

// verify6 sums pseudo-header and message including the checksum: a correct
// checksum makes the folded one's complement sum 0xffff (returned as 0).
func verify6(ip6, icmp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(ip6[8:40])
	add([]byte{0, 0, 0, byte(len(icmp)), 0, 0, 0, 58})
	add(icmp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// The frames the kernel must send when an endpoint comes up, built here by
// the RFCs so the tests compare what is on the wire with an independent
// expectation.

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodesMAC  = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	allNodesAddr = netip.MustParseAddr("ff02::1")
)

// gratuitousARP builds an Ethernet frame holding a broadcast ARP request
// whose sender and target protocol addresses are both ip (RFC 5227 ARP
// announcement). It returns nil unless ip is IPv4 and mac is 6 bytes.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr) []byte {
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
	b = binary.BigEndian.AppendUint16(b, 1) // request
	v4 := ip.As4()
	b = append(b, mac...)
	b = append(b, v4[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
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
