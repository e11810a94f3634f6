package loader

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestParentEgressTagPlace: on a network's parent, a frame tagged in the
// skb's metadata (as the kernel's VLAN devices hand a trunk their frames)
// leaves for the wire and counts under its VLAN, while the same frame with
// its tag in the frame itself (as a container's tag arrives, written above
// its macvlan) is dropped as vlan_tag, whatever its source MAC. A program
// ahead of parent_egress plays the VLAN device: it tags frames of
// ethertype 0x88b5 with VLAN 10 the way vlan_dev_hard_start_xmit does.
func TestParentEgressTagPlace(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) { testParentEgressTagPlace(t, mode) })
	}
}

func testParentEgressTagPlace(t *testing.T, mode Mode) {
	requireMode(t, mode)
	requireMode(t, ModeTCX) // the VLAN device's stand-in
	l := newLab(t)
	d := loadAt(t, privateBPFFS(t))
	l.setup(t, d)
	l.attach(t, d, mode)
	err := nstest.In(l.sb.Path, func() error {
		pl, err := link.AttachTCX(link.TCXOptions{Interface: l.eth0, Program: vlanPusher(t, 10), Attach: tcxAttachType(Egress), Anchor: link.Head()})
		if err == nil {
			t.Cleanup(func() { pl.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	hostMAC := mac("02:00:5e:00:53:99") // a sub-interface's, no endpoint's
	payload := func(s string) []byte { return append([]byte(s), make([]byte, 46-len(s))...) }
	inFrame := tagged(ethFrame(wireMAC, hostMAC, 0x88b5, payload("mvlan-tag-in-frame")), 0x8100, 10)
	inSkb := ethFrame(wireMAC, hostMAC, 0x88b5, payload("mvlan-tag-in-skb"))
	wire := nstest.NewCapture(t, l.sb.WirePath, "wire0")
	before := snapshot(t, d)
	sendFrames(t, l.sb.Path, "eth0", inFrame, 1)
	sendFrames(t, l.sb.Path, "eth0", inSkb, 1)
	leaked := false
	_, err = wire.Wait(3*time.Second, func(f []byte) bool {
		leaked = leaked || strings.Contains(string(f), "mvlan-tag-in-frame")
		return strings.Contains(string(f), "mvlan-tag-in-skb")
	})
	if err != nil {
		t.Fatalf("the frame tagged in its skb never reached the wire: %v", err)
	}
	if leaked {
		t.Error("the frame tagged in the frame reached the wire")
	}
	expectDelta(t, d, before, counts{
		"drop 1 vlan_tag":                    one(len(inFrame)),
		fmt.Sprintf("vlan %d/10 tx", l.eth0): one(len(inSkb)),
	})
}

// vlanPusher is a TC program that tags frames of ethertype 0x88b5 with
// vid in the skb's metadata (bpf_skb_vlan_push) and passes every frame on.
func vlanPusher(t *testing.T, vid int32) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // skb->protocol, network order
		asm.JNE.Imm(asm.R2, 0xb588, "out"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0x0081), // htons(ETH_P_8021Q)
		asm.Mov.Imm(asm.R3, vid),
		asm.FnSkbVlanPush.Call(),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TCX_NEXT
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "vlan_pusher", Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestPriorityTagged: the receive path leaves a priority tag (VID 0) in
// the skb's metadata through TC and clears it after. A switch that
// reflects c2's frame back to c1 (a VEPA switch) with one gives
// ep_ingress c2's untagged frame, checked as c2's; a switch that
// priority-tags the router's frames gives parent_ingress the network's
// own frame, marked as from the wire. Each echo request, from c2 and from
// the router, reaches c1, whose reply reaches its sender; no drop is
// counted.
func TestPriorityTagged(t *testing.T) {
	l := newLab(t)
	d := loadAt(t, privateBPFFS(t))
	l.setup(t, d)
	l.attach(t, d, ModeTC)
	for _, from := range []struct {
		name    string
		mac     []byte
		ip      netip.Addr
		ns, dev string // where its replies arrive
	}{
		{"c2, reflected", l.c2.mac, l.c2.ip, l.c2.path, "eth0"},
		{"the router", wireMAC, netip.MustParseAddr("10.1.0.1"), l.sb.WirePath, "wire0"},
	} {
		const id, seq = 0x6d76, 7
		echo := []byte{8, 0, 0, 0, id >> 8, id & 0xff, 0, seq}
		echo = append(echo, "mvlan-priority"...)
		binary.BigEndian.PutUint16(echo[2:], nstest.Checksum(echo))
		ip := ipv4Packet(from.ip.String(), l.c1.ip.String(), 1, echo)
		binary.BigEndian.PutUint16(ip[10:], nstest.Checksum(ip[:20]))
		frame := tagged(ethFrame(l.c1.mac, from.mac, 0x0800, ip), 0x8100, 5<<13) // priority 5, VID 0
		replies := nstest.NewCapture(t, from.ns, from.dev)
		before := snapshot(t, d)
		sendFrames(t, l.sb.WirePath, "wire0", frame, 1)
		_, err := replies.Wait(3*time.Second, func(f []byte) bool {
			return isEchoReply(f, l.c1.ip, id, seq)
		})
		if err != nil {
			t.Errorf("from %s: c1 did not answer the priority-tagged echo request: %v", from.name, err)
		}
		for k, v := range snapshot(t, d).minus(before) {
			if strings.HasPrefix(k, "drop ") {
				t.Errorf("from %s: %s: %d frames", from.name, k, v.Packets)
			}
		}
	}
}

// isEchoReply reports whether f is an IPv4 echo reply from src with id
// and seq.
func isEchoReply(f []byte, src netip.Addr, id, seq uint16) bool {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[23] != 1 {
		return false
	}
	icmp := f[14+int(f[14]&0x0f)*4:]
	return netip.AddrFrom4([4]byte(f[26:30])) == src && len(icmp) >= 8 && icmp[0] == 0 &&
		binary.BigEndian.Uint16(icmp[4:]) == id && binary.BigEndian.Uint16(icmp[6:]) == seq
}
