package loader

import (
	"context"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mvlan/mvlan/nsthread"
)

// TCXTampered is the cheap part of InspectEndpoint, for when any
// endpoint may have had a TCX program put ahead of mvlan's (a program
// was loaded somewhere: ForeignPrograms): one entry into the namespace
// and one query per hook, no netlink dump, d.mu not held meanwhile. It
// reports whether a TCX program runs first on a hook of the endpoint
// (cookie, ifindex) where it should not: any on a tc hook, another than
// ours on a TCX one. It cannot see the tc side (the namespace's
// notifications tell that), and one it cannot tell counts as tampered.
// A kernel without TCX runs no TCX program first: false, without a query
// (which it would refuse, and every endpoint would be looked at in full
// whenever a program was loaded).
func (d *Datapath) TCXTampered(ctx context.Context, netnsPath string, cookie uint64, ifindex int) bool {
	want := d.tcxFirst(cookie, ifindex)
	if tcx, err := tcxAvailable(); len(want) == 0 || err == nil && !tcx {
		return false
	}
	tampered := false
	err := nsthread.DoPath(netnsPath, func() error {
		for hook, id := range want {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: tcxAttachType(hook)})
			switch {
			case err != nil:
				tampered = true
			case id == 0: // a tc hook: no TCX program may run first
				tampered = tampered || len(res.Programs) > 0
			default:
				tampered = tampered || len(res.Programs) == 0 || res.Programs[0].ID != id
			}
		}
		return nil
	})
	return err == nil && tampered && ctx.Err() == nil
}

// tcxFirst returns, for each hook of the endpoint this Datapath attached,
// the program that must run first among TCX programs: ours on a TCX hook,
// none (0) on a tc hook.
func (d *Datapath) tcxFirst(cookie uint64, ifindex int) map[Hook]ebpf.ProgramID {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[Hook]ebpf.ProgramID{}
	for _, hook := range []Hook{Ingress, Egress} {
		a, ok := d.attached.get(attachKey{cookie, ifindex, hook})
		if !ok {
			continue
		}
		want[hook] = 0
		if p := d.epProgs[cookie]; a.Mode == ModeTCX && p != nil {
			want[hook] = p.id(hook)
		}
	}
	return want
}

// id is the ID of the program on hook (the stub, or the shared program),
// looked up once.
func (p *epPrograms) id(hook Hook) ebpf.ProgramID {
	i, prog := 0, p.ingress
	if hook == Egress {
		i, prog = 1, p.egress
	}
	if p.ids[i] == 0 {
		if info, err := prog.Info(); err == nil {
			p.ids[i], _ = info.ID()
		}
	}
	return p.ids[i]
}
