package loader

import (
	"testing"

	"github.com/cilium/ebpf/asm"
)

// TestStubSlotNotConstant: the stub's tail call takes its slot from a
// load off the context (R1), never an immediate, so that the verifier
// makes it an indirect call and the kernel does not track every stub on
// ep_progs (a walk of all of them on each stub load and free). The kernel
// dump of a loaded program cannot tell the two kinds apart, so this
// checks the code the stub is built from.
func TestStubSlotNotConstant(t *testing.T) {
	insns := stubInstructions(3, 0x1122334455667788, 1)
	call := -1
	for i, ins := range insns {
		if ins.IsBuiltinCall() && ins.Constant == int64(asm.FnTailCall) {
			call = i
		}
	}
	if call < 0 {
		t.Fatalf("no tail call in the stub:\n%v", insns)
	}
	for i := call - 1; i >= 0; i-- {
		ins := insns[i]
		if ins.Dst != asm.R3 || ins.OpCode.Class().IsStore() {
			continue
		}
		if !ins.OpCode.Class().IsLoad() || ins.OpCode.Mode() != asm.MemMode || ins.Src != asm.R1 {
			t.Fatalf("R3 (the slot) last set by %v before the tail call; want a load from the context (R1)", ins)
		}
		return
	}
	t.Fatal("R3 (the slot) is never set before the tail call")
}
