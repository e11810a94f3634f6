package link_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/link"
)

func TestGratuitousARPFrame(t *testing.T) {
	m := net.HardwareAddr{0x02, 0x42, 0xac, 0x10, 0x56, 0x0a}
	ip := netip.MustParseAddr("172.16.86.10")
	eth := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x10, 0x56, 0x0a, 0x08, 0x06}
	sender := []byte{0x02, 0x42, 0xac, 0x10, 0x56, 0x0a, 172, 16, 86, 10}
	for _, tc := range []struct {
		reply bool
		want  []byte
	}{
		{false, slices.Concat(eth, []byte{0, 1, 0x08, 0, 6, 4, 0, 1}, sender, []byte{0, 0, 0, 0, 0, 0, 172, 16, 86, 10})}, // RFC 5227 announcement
		{true, slices.Concat(eth, []byte{0, 1, 0x08, 0, 6, 4, 0, 2}, sender, sender)},                                     // target: ourselves
	} {
		if f := link.GratuitousARP(m, ip, tc.reply); !bytes.Equal(f, tc.want) {
			t.Errorf("GratuitousARP(reply %v) =\n% x\nwant\n% x", tc.reply, f, tc.want)
		}
	}
	if link.GratuitousARP(m, netip.MustParseAddr("2001:db8::1"), false) != nil {
		t.Error("GratuitousARP of an IPv6 address is not nil")
	}
}

func TestUnsolicitedNAFrame(t *testing.T) {
	m := net.HardwareAddr{0x02, 0x42, 0xac, 0x10, 0x56, 0x0a}
	ip := netip.MustParseAddr("2001:db8:abc8::10")
	f := link.UnsolicitedNA(m, ip)
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
	if link.UnsolicitedNA(m, netip.MustParseAddr("10.0.0.1")) != nil {
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
