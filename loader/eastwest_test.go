package loader

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/mvlan/mvlan/internal/nstest"
)

// The verdict ep_egress leaves in cb[2..3] (bpf/include/eastwest.h).
const ewMagicLo, ewMagicHi = 0x616c766d, 0x77655f6e

// TestEastWestVerdict: ep_egress's verdict on a frame between two
// endpoints reaches parent_ingress for real (macvlan hands the frame to
// the parent's receive path with cb as it was) and is taken there. A probe
// before parent_ingress on eth0 sees it on each frame of a ping between
// c1 and c2, and on none of a ping to the wire; a probe after
// parent_ingress sees none. (The counts it stands for are TestAttach's.)
func TestEastWestVerdict(t *testing.T) {
	requireMode(t, ModeTCX)
	l := newLab(t)
	d := loadAt(t, privateBPFFS(t))
	l.setup(t, d)
	l.attach(t, d, ModeTCX)
	seen, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seen.Close() })
	cbProbe(t, l, seen, 0, link.Head())
	cbProbe(t, l, seen, 1, link.Tail())
	count := func(i uint32) uint64 {
		var v uint64
		if err := seen.Lookup(i, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	ping(t, l.c1, "10.1.0.11", 3)
	if got := count(0); got != 6 {
		t.Errorf("the verdict came with %d frames of 3 echoes between c1 and c2 to eth0's ingress; want 6", got)
	}
	ping(t, l.c1, "10.1.0.1", 2)
	if got := count(0); got != 6 {
		t.Errorf("after 2 echoes to the wire: %d frames with a verdict; want still 6", got)
	}
	if got := count(1); got != 0 {
		t.Errorf("%d frames still had the verdict after parent_ingress; want none", got)
	}
}

// cbProbe attaches to eth0's TCX ingress, at anchor, a program that counts
// in seen[i] the frames carrying ep_egress's verdict.
func cbProbe(t *testing.T, l *lab, seen *ebpf.Map, i int32, anchor link.Anchor) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL", Instructions: asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, cbOffset+8, asm.Word),
		asm.JNE.Imm(asm.R2, ewMagicLo, "out"),
		asm.LoadMem(asm.R2, asm.R1, cbOffset+12, asm.Word),
		asm.JNE.Imm(asm.R2, ewMagicHi, "out"),
		asm.StoreImm(asm.RFP, -4, int64(i), asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, seen.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TCX_NEXT
		asm.Return(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	err = nstest.In(l.sb.Path, func() error {
		pl, err := link.AttachTCX(link.TCXOptions{Interface: l.eth0, Program: prog, Attach: tcxAttachType(Ingress), Anchor: anchor})
		if err == nil {
			t.Cleanup(func() { pl.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// cbCtx is struct __sk_buff up to cb[], the fields a test run may set.
type cbCtx struct {
	Len, PktType, Mark uint32
	_                  [9]uint32 // queue_mapping .. tc_index
	CB                 [5]uint32
}

const ewCounts = 0x80000000

// verdict is cb[2..4] holding ep_egress's verdict for network with flags.
func verdict(network, flags uint32) [5]uint32 {
	return [5]uint32{0, 0, ewMagicLo, ewMagicHi, network | flags}
}

// runCB runs prog once on frame with cb[] set to cb and returns the
// verdict, the mark and the cb[] the program left.
func runCB(t *testing.T, prog runner, frame []byte, cb [5]uint32) (ret, mark uint32, out [5]uint32) {
	t.Helper()
	raw := make([]byte, 256)
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: cbCtx{CB: cb}, ContextOut: raw})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(raw[cbOffset+4*i:])
	}
	return ret, binary.LittleEndian.Uint32(raw[8:]), out
}

// TestEastWestLeave: ep_egress leaves its verdict on a frame it passes for
// a local endpoint of its network (east-west unless from the unspecified
// address) and clears cb[2..4] on every other.
func TestEastWestLeave(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		t.Fatal(err)
	}
	stale := [5]uint32{0, 0, ewMagicLo, ewMagicHi, 7}
	for _, c := range []struct {
		name  string
		frame []byte
		want  [5]uint32
	}{
		{"to a neighbour", ethFrame(macB, macA, 0x0800, v4("10.1.0.10", "10.1.0.11")), verdict(netA, ewCounts)},
		{"arp to a neighbour", ethFrame(macB, macA, 0x0806, arpPacket(2, macA, "10.1.0.10", macB, "10.1.0.11")), verdict(netA, ewCounts)},
		{"from the unspecified address", ethFrame(macB, macA, 0x0800, v4("0.0.0.0", "10.1.0.11")), verdict(netA, 0)},
		{"to the router", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.1.0.1")), [5]uint32{2: 0, 3: ewMagicHi}},
		{"broadcast", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "10.1.0.10", make([]byte, 6), "10.1.0.11")), [5]uint32{3: ewMagicHi}},
		{"tagged to a neighbour", tagged(ethFrame(macB, macA, 0x0800, v4("10.1.0.10", "10.1.0.11")), 0x8100, 5), [5]uint32{3: ewMagicHi}},
	} {
		ret, _, out := runCB(t, p.egress, c.frame, stale)
		if ret != verdictNext || out[2] != c.want[2] || out[3] != c.want[3] || out[4] != c.want[4] {
			t.Errorf("%s: verdict %#x, cb[2..4] %#x; want %#x, %#x", c.name, ret, out[2:], verdictNext, c.want[2:])
		}
	}
}

// TestEastWestTake: parent_ingress counts a frame with a verdict for its
// own network on the parent (and as east-west when it says so), without
// looking at it, and clears it; a verdict for another network, or half of
// one, takes the full path. A forged verdict gains its frame nothing: no
// wire mark, so receivers hold it to the rules of the MAC it carries.
func TestEastWestTake(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	fromWire := ethFrame(macA, macRouter, 0x0800, v4("198.51.100.7", "10.1.0.10"))
	for _, c := range []struct {
		name     string
		cb       [5]uint32
		wantMark uint32
		want     func(n int) counts
	}{
		{"east-west", verdict(netA, ewCounts), 0, func(n int) counts { return counts{"vlan 1/0 rx": one(n), "eastwest 1/0": one(n)} }},
		{"not east-west", verdict(netA, 0), 0, func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }},
		{"another network's", verdict(netC, ewCounts), WireMark, func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }},
		{"half a verdict", [5]uint32{2: ewMagicLo, 4: netA | ewCounts}, WireMark, func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }},
	} {
		before := snapshot(t, d)
		ret, mark, out := runCB(t, d.parentIngress, fromWire, c.cb)
		if ret != verdictNext || mark != c.wantMark || (c.cb[3] == ewMagicHi && out[2] == ewMagicLo) {
			t.Errorf("%s: verdict %#x, mark %#x, cb[2] %#x; want %#x, %#x, any whole verdict taken", c.name, ret, mark, out[2], verdictNext, c.wantMark)
		}
		expectDelta(t, d, before, c.want(len(fromWire)))
	}
	if _, _, out := runCB(t, d.parentEgress, fromWire, verdict(netA, ewCounts)); out[2] == ewMagicLo {
		t.Error("parent_egress let a verdict leave for the wire")
	}
}
