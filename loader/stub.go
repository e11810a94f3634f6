package loader

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The stub of a network namespace: what is attached to its endpoints'
// hooks. It puts the namespace's cookie in skb->cb[0..1] and tail-calls
// the shared endpoint program of its hook (ep_progs); should the tail
// call fail (the program array lost its programs), the frame is dropped,
// never passed unchecked. (bpf_get_netns_cookie(skb) cannot replace it:
// it gives the namespace of skb->sk, init_net's for received frames; see
// bpf/include/endpoint.h.)
//
// It is built here rather than compiled from C: an object of its own
// carries BTF, a .rodata map for its two constants and every shared map
// of maps.h, and loading it cost a collection's worth of work per
// namespace (about a third of an attach's CPU in a profile). These
// instructions are what clang made of the C, with the constants as
// immediates: one program load, nothing else.

// cbOffset is the offset of cb[0] in struct __sk_buff.
const cbOffset = 48

// verdictDrop is TC_ACT_SHOT.
const verdictDrop = 2

// loadStub loads the stub of the namespace with this cookie for the
// shared program in slot, named name (what bpftool and the attachment
// checks show), and notes it as ours. The caller holds d.mu.
func (d *Datapath) loadStub(name string, cookie uint64, slot uint32) (*ebpf.Program, error) {
	prog, err := d.buildStub(name, cookie, slot)
	if err != nil {
		return nil, err
	}
	d.ids.note(prog)
	return prog, nil
}

// buildStub is loadStub without noting the program; safe without d.mu.
func (d *Datapath) buildStub(name string, cookie uint64, slot uint32) (*ebpf.Program, error) {
	insns := stubInstructions(d.maps.EpProgs.FD(), cookie, slot)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SchedCLS, License: "Dual BSD/GPL", Instructions: insns})
	if err != nil {
		return nil, fmt.Errorf("load stub %s: %w", name, err)
	}
	return prog, nil
}

// stubInstructions is the stub's code for the shared program in slot of
// the program array progs (an fd), in the namespace with this cookie.
func stubInstructions(progs int, cookie uint64, slot uint32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm32(asm.R2, int32(uint32(cookie))),
		asm.StoreMem(asm.R1, cbOffset, asm.R2, asm.Word),
		asm.Mov.Imm32(asm.R2, int32(uint32(cookie>>32))),
		asm.StoreMem(asm.R1, cbOffset+4, asm.R2, asm.Word),
		// The slot through cb[2]: read back from the context, it is not a
		// constant to the verifier, so the tail call is an indirect one.
		// With a constant the kernel makes it a direct jump, patched when
		// ep_progs changes, and tracks every stub on the map's list of
		// such programs: loading a stub and freeing one walk that list
		// under one mutex (O(N) each; 1000 namespaces deleted at once
		// left ~600 kworkers waiting in prog_array_map_poke_untrack).
		asm.Mov.Imm32(asm.R3, int32(slot)),
		asm.StoreMem(asm.R1, cbOffset+8, asm.R3, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, cbOffset+8, asm.Word),
		asm.LoadMapPtr(asm.R2, progs),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, verdictDrop),
		asm.Return(),
	}
}
