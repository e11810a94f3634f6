package loader

import (
	"errors"
	"os"

	"github.com/cilium/ebpf"
)

// Programs appearing: a TCX program attached ahead of mvlan's on an
// endpoint sends no notification, but it had to be loaded first. The
// Datapath notes the ID of each program it loads; ForeignPrograms looks
// only at the IDs given out since its last call (IDs only grow), so a
// quiet host costs one system call.

// programIDs are the IDs this Datapath loaded, and the highest ID seen.
type programIDs struct {
	ours map[ebpf.ProgramID]bool
	last ebpf.ProgramID
}

// baseline makes every program loaded so far not new.
func (p *programIDs) baseline() {
	p.ours = map[ebpf.ProgramID]bool{}
	for id := p.last; ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id, p.last = next, next
	}
}

// note records prog as ours. Caller holds d.mu.
func (p *programIDs) note(prog *ebpf.Program) {
	if info, err := prog.Info(); err == nil {
		if id, ok := info.ID(); ok {
			p.ours[id] = true
		}
	}
}

// forget drops prog's ID once it is closed for good. Caller holds d.mu.
func (p *programIDs) forget(prog *ebpf.Program) {
	if info, err := prog.Info(); err == nil {
		if id, ok := info.ID(); ok {
			delete(p.ours, id)
		}
	}
}

// ForeignPrograms reports whether a tc program that this Datapath did not
// load has been loaded since the last call.
func (d *Datapath) ForeignPrograms() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	foreign := false
	for {
		id, err := ebpf.ProgramGetNextID(d.ids.last)
		if err != nil {
			return foreign
		}
		d.ids.last = id
		if !d.ids.ours[id] && isTC(id) {
			foreign = true
		}
	}
}

// isTC reports whether program id is a tc program (one that could be
// attached to an endpoint's hook); one that is gone already is not.
func isTC(id ebpf.ProgramID) bool {
	prog, err := ebpf.NewProgramFromID(id)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true // cannot tell: look
	}
	defer prog.Close()
	return prog.Type() == ebpf.SchedCLS || prog.Type() == ebpf.SchedACT
}
