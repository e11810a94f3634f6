package probe

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// TestAnswer: what counts as an answer. A probe (ours or another
// host's, sender 0.0.0.0 or ::) never does; an ARP reply, a gratuitous
// ARP and a neighbour advertisement do, naming the address; truncated
// frames and other protocols do not; the NS checksum verifies.
func TestAnswer(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	a4, a6 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00::3")
	reply := arpProbe(mac, a4)
	binary.BigEndian.PutUint16(reply[ethLen+6:], arpReply)
	copy(reply[ethLen+14:ethLen+18], a4.AsSlice()) // sender IP: the address
	garp := arpProbe(mac, a4)
	copy(garp[ethLen+14:ethLen+18], a4.AsSlice()) // request, sender = target
	na := nsProbe(mac, a6)
	na[ethLen+ipv6Len] = icmpNA
	for _, tc := range []struct {
		name  string
		frame []byte
		proto uint16
		want  netip.Addr
	}{
		{"our ARP probe", arpProbe(mac, a4), 0x0806, netip.Addr{}},
		{"ARP reply", reply, 0x0806, a4},
		{"gratuitous ARP", garp, 0x0806, a4},
		{"truncated ARP", reply[:ethLen+20], 0x0806, netip.Addr{}},
		{"our DAD solicitation", nsProbe(mac, a6), 0x86dd, netip.Addr{}},
		{"neighbour advertisement", na, 0x86dd, a6},
		{"truncated NA", na[:ethLen+ipv6Len+10], 0x86dd, netip.Addr{}},
		{"runt", []byte{1, 2, 3}, 0x0806, netip.Addr{}},
	} {
		got, ok := answer(tc.frame, tc.proto)
		if ok != tc.want.IsValid() || (ok && got != tc.want) {
			t.Errorf("%s: answer %v %v, want %v", tc.name, got, ok, tc.want)
		}
	}
	ns := nsProbe(mac, a6)
	var src, dst [16]byte
	copy(dst[:], ns[ethLen+24:ethLen+40])
	if icmpChecksum(src, dst, ns[ethLen+ipv6Len:]) != 0 {
		t.Error("the solicitation's ICMPv6 checksum does not verify")
	}
	if g := ns[ethLen+24 : ethLen+40]; netip.AddrFrom16([16]byte(g)) != netip.MustParseAddr("ff02::1:ff00:3") {
		t.Errorf("solicited-node group %v, want ff02::1:ff00:3", netip.AddrFrom16([16]byte(g)))
	}
}
