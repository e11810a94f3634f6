package loader

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	tc "github.com/florianl/go-tc"

	"github.com/mvlan/mvlan/internal/nstest"
)

// The verdict ep_egress leaves in cb[2..3] (bpf/include/eastwest.h).
const ewMagicLo, ewMagicHi = 0x616c766d, 0x77655f6e

// TestEastWestVerdict: ep_egress's verdict on a frame between two
// endpoints reaches parent_ingress for real (macvlan hands the frame to
// the parent's receive path with cb as it was) and is taken there, in
// both attach modes. A probe before parent_ingress on eth0 sees it on
// each frame of a ping between c1 and c2, and on none of a ping to the
// wire. A probe after parent_ingress sees no verdict, and the wire mark
// (which the full path would have set on each of those 6 frames, as it
// does on the 2 replies from the wire) on the wire's replies only.
func TestEastWestVerdict(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) { testEastWestVerdict(t, mode) })
	}
}

func testEastWestVerdict(t *testing.T, mode Mode) {
	requireMode(t, mode)
	requireMode(t, ModeTCX) // the first probe
	l, _ := attachedLab(t, mode)
	seen := seenMap(t)
	attachProbe(t, l, probe(t, seen, 0), link.Head(), 0)
	if mode == ModeTCX {
		attachProbe(t, l, probe(t, seen, 2), link.Tail(), 0)
	} else {
		attachProbe(t, l, probe(t, seen, 2), nil, FilterPriority+1)
	}
	count := func(i uint32) uint64 {
		var v uint64
		if err := seen.Lookup(i, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := func(when string, verdicts, marked uint64) {
		t.Helper()
		if got := count(0); got != verdicts {
			t.Errorf("%s: %d frames came to eth0's ingress with a verdict; want %d", when, got, verdicts)
		}
		if got := count(2); got != 0 {
			t.Errorf("%s: %d frames still had the verdict after parent_ingress; want none", when, got)
		}
		if got := count(3); got != marked {
			t.Errorf("%s: parent_ingress left the wire mark on %d frames; want %d", when, got, marked)
		}
	}
	ping(t, l.c1, "10.1.0.11", 3)
	want("3 echoes between c1 and c2", 6, 0)
	ping(t, l.c1, "10.1.0.1", 2)
	want("and 2 to the wire", 6, 2)
}

// attachedLab is a lab with a datapath of its own, its tables filled and
// everything attached in mode.
func attachedLab(t *testing.T, mode Mode) (*lab, *Datapath) {
	t.Helper()
	l := newLab(t)
	d := loadAt(t, privateBPFFS(t))
	l.setup(t, d)
	l.attach(t, d, mode)
	return l, d
}

// seenMap is an array of 4 counters for the probes' programs.
func seenMap(t *testing.T) *ebpf.Map {
	t.Helper()
	seen, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seen.Close() })
	return seen
}

// probe is a program that counts in seen[base] the frames with
// ep_egress's verdict and in seen[base+1] those with the wire mark.
func probe(t *testing.T, seen *ebpf.Map, base int32) *ebpf.Program {
	t.Helper()
	inc := func(i int32, next string) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.RFP, -4, int64(i), asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, seen.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, next),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		}
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, cbOffset+8, asm.Word),
		asm.JNE.Imm(asm.R2, ewMagicLo, "mark"),
		asm.LoadMem(asm.R2, asm.R6, cbOffset+12, asm.Word),
		asm.JNE.Imm(asm.R2, ewMagicHi, "mark"),
	}
	insns = append(insns, inc(base, "mark")...)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R6, 8, asm.Word).WithSymbol("mark"), // skb->mark
		asm.And.Imm(asm.R2, WireMark),
		asm.JEq.Imm(asm.R2, 0, "out"),
	)
	insns = append(insns, inc(base+1, "out")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TCX_NEXT, TC_ACT_UNSPEC
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// attachProbe attaches prog to eth0's ingress: with TCX at anchor, or
// (anchor nil) as a cls_bpf filter of priority prio.
func attachProbe(t *testing.T, l *lab, prog *ebpf.Program, anchor link.Anchor, prio uint32) {
	t.Helper()
	var err error
	if anchor != nil {
		err = nstest.In(l.sb.Path, func() error {
			pl, err := link.AttachTCX(link.TCXOptions{Interface: l.eth0, Program: prog, Attach: tcxAttachType(Ingress), Anchor: anchor})
			if err == nil {
				t.Cleanup(func() { pl.Close() })
			}
			return err
		})
	} else {
		err = withTC(target{netns: l.sb.Path}, func(rtnl *tc.Tc) error {
			fd, flags, name := uint32(prog.FD()), uint32(bpfFlagDirect), "probe"
			obj := filterObject(l.eth0, Ingress)
			obj.Handle, obj.Info = FilterHandle+1, prio<<16|ethPAllNet
			obj.Attribute = tc.Attribute{Kind: "bpf", BPF: &tc.Bpf{FD: &fd, Name: &name, Flags: &flags}}
			return rtnl.Filter().Add(&obj)
		})
	}
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

// verdict is cb[2..4] holding ep_egress's verdict on a frame of the
// endpoint in slot, of network, with flags.
func verdict(slot, network, flags uint32) [5]uint32 {
	return [5]uint32{0, 0, ewMagicLo, ewMagicHi, slot<<12 | network | flags}
}

// slotOf is the slot of the endpoint with this MAC.
func slotOf(t *testing.T, d *Datapath, hw net.HardwareAddr) uint32 {
	t.Helper()
	var ep epInfo
	if err := d.maps.EpByMac.Lookup(macKey{MAC: [6]byte(hw)}, &ep); err != nil {
		t.Fatalf("ep_by_mac %s: %v", hw, err)
	}
	return ep.Slot
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
	a := slotOf(t, d, macA)
	for _, c := range []struct {
		name  string
		frame []byte
		want  [5]uint32
	}{
		{"to a neighbour", ethFrame(macB, macA, 0x0800, v4("10.1.0.10", "10.1.0.11")), verdict(a, netA, ewCounts)},
		{"arp to a neighbour", ethFrame(macB, macA, 0x0806, arpPacket(2, macA, "10.1.0.10", macB, "10.1.0.11")), verdict(a, netA, ewCounts)},
		{"from the unspecified address", ethFrame(macB, macA, 0x0800, ipv4Packet("0.0.0.0", "10.1.0.11", 17, bootpUDP(dhcp4Bytes(t, macA)))), verdict(a, netA, 0)},
		{"to the router", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.1.0.1")), [5]uint32{2: 0, 3: ewMagicHi}},
		{"broadcast", ethFrame(broadcastMAC, macA, 0x0806, arpPacket(1, macA, "10.1.0.10", make([]byte, 6), "10.1.0.11")), [5]uint32{3: ewMagicHi}},
	} {
		ret, _, out := runCB(t, p.egress, c.frame, stale)
		if ret != verdictPass || out[2] != c.want[2] || out[3] != c.want[3] || out[4] != c.want[4] {
			t.Errorf("%s: verdict %#x, cb[2..4] %#x; want %#x, %#x", c.name, ret, out[2:], verdictPass, c.want[2:])
		}
	}
}

// TestEastWestTake: parent_ingress counts a frame with a verdict for its
// own network, from the sender the verdict names, on the parent (and as
// east-west when it says so), without looking further, and takes the
// verdict away; any other takes the full path. A forged verdict gains its
// frame nothing: no wire mark, so receivers hold it to the rules of the
// MAC it carries.
func TestEastWestTake(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	a, c := slotOf(t, d, macA), slotOf(t, d, macC)
	fromA := ethFrame(macB, macA, 0x0800, v4("10.1.0.10", "10.1.0.11"))
	fromWire := ethFrame(macA, macRouter, 0x0800, v4("198.51.100.7", "10.1.0.10"))
	rx := func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }
	ew := func(n int) counts { return counts{"vlan 1/0 rx": one(n), "eastwest 1/0": one(n)} }
	for _, c := range []struct {
		name     string
		frame    []byte
		cb       [5]uint32
		wantMark uint32
		want     func(n int) counts
	}{
		{"east-west", fromA, verdict(a, netA, ewCounts), 0, ew},
		{"not east-west", fromA, verdict(a, netA, 0), 0, rx},
		{"no verdict", fromA, [5]uint32{}, WireMark, ew},
		{"another network's", fromA, verdict(a, netC, ewCounts), WireMark, ew},
		{"another sender's", fromA, verdict(c, netA, ewCounts), WireMark, ew},
		{"from the wire", fromWire, verdict(a, netA, ewCounts), WireMark, rx},
		{"half a verdict", fromA, [5]uint32{2: ewMagicLo, 4: a<<12 | netA | ewCounts}, WireMark, ew},
	} {
		before := snapshot(t, d)
		ret, mark, out := runCB(t, d.parentIngress, c.frame, c.cb)
		if ret != verdictNext || mark != c.wantMark || (c.cb[3] == ewMagicHi && out[2] == ewMagicLo) {
			t.Errorf("%s: verdict %#x, mark %#x, cb[2] %#x; want %#x, %#x, any whole verdict taken", c.name, ret, mark, out[2], verdictNext, c.wantMark)
		}
		expectDelta(t, d, before, c.want(len(c.frame)))
	}
	if _, _, out := runCB(t, d.parentEgress, fromA, verdict(a, netA, ewCounts)); out[2] == ewMagicLo {
		t.Error("parent_egress let a verdict leave for the wire")
	}
}

// TestEgressLastWord: ep_egress's pass is the hook's last word: a program
// c2 puts after it (under TCX: with TCX, and as a clsact filter, which
// runs after TCX programs; under tc: as a filter of a later priority)
// never sees a frame, so it cannot rewrite one after the check. 3 echoes
// from c2 to c1 get their replies; the programs after ep_egress count no
// frame at all.
func TestEgressLastWord(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) {
			requireMode(t, mode)
			l, _ := attachedLab(t, mode)
			seen := seenMap(t)
			after := frameCounter(t, seen)
			if mode == ModeTCX { // (under tc, a TCX program would run before ours)
				err := nstest.In(l.c2.path, func() error {
					pl, err := link.AttachTCX(link.TCXOptions{Interface: l.c2.ifindex, Program: after, Attach: tcxAttachType(Egress), Anchor: link.Tail()})
					if err == nil {
						t.Cleanup(func() { pl.Close() })
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				l.sb.Run(t, l.c2.path, "tc", "qdisc", "add", "dev", "eth0", "clsact") // ours put none there
			}
			err := withTC(target{netns: l.c2.path}, func(rtnl *tc.Tc) error {
				fd, flags, name := uint32(after.FD()), uint32(bpfFlagDirect), "after"
				obj := filterObject(l.c2.ifindex, Egress)
				obj.Handle, obj.Info = FilterHandle+1, (FilterPriority+1)<<16|ethPAllNet
				obj.Attribute = tc.Attribute{Kind: "bpf", BPF: &tc.Bpf{FD: &fd, Name: &name, Flags: &flags}}
				return rtnl.Filter().Add(&obj)
			})
			if err != nil {
				t.Fatal(err)
			}
			ping(t, l.c2, l.c1.ip.String(), 3)
			var n uint64
			if err := seen.Lookup(uint32(0), &n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("programs after ep_egress on c2's egress saw its 3 echo requests to c1 %d times; want never", n)
			}
		})
	}
}

// frameCounter is a program that counts every frame in seen[0].
func frameCounter(t *testing.T, seen *ebpf.Map) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, seen.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TCX_NEXT, TC_ACT_UNSPEC
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "frame_counter", Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestEastWestForgedVerdict: c2, root in its namespace, runs a program of
// its own after ep_egress, in the one place left to it (a filter of a
// root qdisc: TCX programs and clsact filters after ep_egress never run),
// that gives its IPv4 frames c1's MAC and a verdict naming c1 (the slot
// is easy to guess). parent_ingress takes a verdict only from a socket of
// the named sender's namespace: each of 3 datagrams from c2's socket, to
// c1, is dropped there as mac_spoof, as the full path drops it without a
// verdict, and never reaches c1's ingress. (Only the direct build can
// tell a frame's socket.)
func TestEastWestForgedVerdict(t *testing.T) {
	requireMode(t, ModeTCX)
	l, d := attachedLab(t, ModeTCX)
	if d.Path() != PathDirect {
		t.Skip("the stub path cannot tell a frame's socket")
	}
	forger := forger(t, l.c1.mac, verdict(slotOf(t, d, l.c1.mac), netA, ewCounts))
	l.sb.Run(t, l.c2.path, "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb")
	addRootFilter(t, l.c2, forger)
	const n, frameLen = 3, 14 + 20 + 8 + 18
	before := snapshot(t, d)
	err := nstest.In(l.c2.path, func() error {
		conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: l.c1.ip.AsSlice(), Port: 9})
		if err != nil {
			return err
		}
		defer conn.Close()
		for range n {
			if _, err := conn.Write([]byte("mvlan-forged-cb-18")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := Counter{Packets: n, Bytes: n * frameLen}
	expectDelta(t, d, before, counts{"net 1 tx": sent, "drop 1 mac_spoof": sent})
}

// forger is a program that gives each IPv4 frame the source MAC hw and
// the verdict cb (cb[2..4]), and passes it on.
func forger(t *testing.T, hw net.HardwareAddr, cb [5]uint32) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // skb->protocol, network order
		asm.JNE.Imm(asm.R2, 0x0008, "out"),
		asm.StoreImm(asm.RFP, -8, int64(binary.LittleEndian.Uint32(hw[:4])), asm.Word),
		asm.StoreImm(asm.RFP, -4, int64(binary.LittleEndian.Uint16(hw[4:])), asm.Half),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 6), // the source MAC's offset
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -8),
		asm.Mov.Imm(asm.R4, 6),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnSkbStoreBytes.Call(),
	}
	for i := 2; i < 5; i++ {
		insns = append(insns, asm.StoreImm(asm.R6, int16(cbOffset+4*i), int64(int32(cb[i])), asm.Word))
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TCX_NEXT
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "forger", Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}
