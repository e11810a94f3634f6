package loader

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	tc "github.com/florianl/go-tc"
	"github.com/florianl/go-tc/core"
	"golang.org/x/sys/unix"
)

// Our cls_bpf filters: one per hook at this priority and handle, named
// FilterNamePrefix + program name. A filter at the same priority and handle
// that is not named so belongs to someone else and is never touched.
const (
	FilterPriority   = 0x4d56 // "MV"
	FilterHandle     = 1
	FilterNamePrefix = "mvlan:"
)

const (
	clsactHandle  = 0xFFFF0000 // TC_H_MAKE(TC_H_CLSACT, 0)
	ethPAllNet    = 0x0300     // htons(ETH_P_ALL)
	bpfFlagDirect = 1          // TCA_BPF_FLAG_ACT_DIRECT
)

func tcParent(hook Hook) uint32 {
	if hook == Ingress {
		return core.BuildHandle(tc.HandleRoot, tc.HandleMinIngress)
	}
	return core.BuildHandle(tc.HandleRoot, tc.HandleMinEgress)
}

// withTC runs fn with an rtnetlink socket in the target's netns.
func withTC(t target, fn func(*tc.Tc) error) error {
	nsfd, closeNS, err := openNetns(t.netns)
	if err != nil {
		return err
	}
	defer closeNS()
	rtnl, err := tc.Open(&tc.Config{NetNS: nsfd})
	if err != nil {
		return fmt.Errorf("rtnetlink: %w", err)
	}
	return errors.Join(fn(rtnl), rtnl.Close())
}

// attachTC replaces (or creates) our direct-action filter on the hook,
// creating the clsact qdisc first if the link has none.
func (d *Datapath) attachTC(ctx context.Context, t target, hook Hook, prog *ebpf.Program, name string) error {
	return d.attachTCHooks(ctx, t, tcHook{hook, prog, name})
}

// tcHook is a program for one hook, named name.
type tcHook struct {
	hook Hook
	prog *ebpf.Program
	name string
}

// attachTCHooks is attachTC for each of hooks, with one rtnetlink socket
// in the target's namespace and one look for its clsact qdisc.
func (d *Datapath) attachTCHooks(ctx context.Context, t target, hooks ...tcHook) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return withTC(t, func(rtnl *tc.Tc) error {
		if err := d.ensureClsact(rtnl, t); err != nil {
			return err
		}
		for _, h := range hooks {
			if err := replaceFilter(rtnl, t, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// replaceFilter puts our filter running h.prog on the hook, unless it
// runs it already (a restart, with the stub pinned or the shared program).
func replaceFilter(rtnl *tc.Tc, t target, h tcHook) error {
	running, ok, err := ourFilterProg(rtnl, t.ifindex, h.hook)
	if err != nil {
		return err
	}
	if ok && running != 0 && running == programID(h.prog) {
		return nil
	}
	fd, flags, fname := uint32(h.prog.FD()), uint32(bpfFlagDirect), FilterNamePrefix+h.name
	obj := filterObject(t.ifindex, h.hook)
	obj.Attribute = tc.Attribute{Kind: "bpf", BPF: &tc.Bpf{FD: &fd, Name: &fname, Flags: &flags}}
	if err := rtnl.Filter().Replace(&obj); err != nil {
		return fmt.Errorf("tc filter replace: %w", err)
	}
	return nil
}

func filterObject(ifindex int, hook Hook) tc.Object {
	return tc.Object{Msg: tc.Msg{
		Family:  unix.AF_UNSPEC,
		Ifindex: uint32(ifindex),
		Handle:  FilterHandle,
		Parent:  tcParent(hook),
		Info:    FilterPriority<<16 | ethPAllNet,
	}}
}

// errForeignFilter: another filter holds our place (priority and handle).
var errForeignFilter = errors.New("our place is taken")

// ourFilter reports whether our filter is on the hook; a foreign filter at
// our priority and handle is an error.
func ourFilter(rtnl *tc.Tc, ifindex int, hook Hook) (bool, error) {
	_, ok, err := ourFilterProg(rtnl, ifindex, hook)
	return ok, err
}

// ourFilterProg is ourFilter with the ID of the program our filter runs.
func ourFilterProg(rtnl *tc.Tc, ifindex int, hook Hook) (ebpf.ProgramID, bool, error) {
	filters, err := rtnl.Filter().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(ifindex), Parent: tcParent(hook)})
	if err != nil {
		return 0, false, fmt.Errorf("list tc filters: %w", err)
	}
	for _, f := range filters {
		if f.Info>>16 != FilterPriority || f.Handle != FilterHandle {
			continue
		}
		if f.Kind == "bpf" && f.BPF != nil && f.BPF.Name != nil && strings.HasPrefix(*f.BPF.Name, FilterNamePrefix) {
			var id ebpf.ProgramID
			if f.BPF.ID != nil {
				id = ebpf.ProgramID(*f.BPF.ID)
			}
			return id, true, nil
		}
		return 0, false, fmt.Errorf("a foreign %s filter holds priority %d handle %d on %s; remove it or move it: %w", f.Kind, FilterPriority, FilterHandle, hook, errForeignFilter)
	}
	return 0, false, nil
}

// ensureClsact creates the clsact qdisc if the link has none, and records
// that we did.
func (d *Datapath) ensureClsact(rtnl *tc.Tc, t target) error {
	has, err := hasClsact(rtnl, t.ifindex)
	if err != nil || has {
		return err
	}
	q := tc.Object{
		Msg:       tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(t.ifindex), Handle: clsactHandle, Parent: tc.HandleIngress},
		Attribute: tc.Attribute{Kind: "clsact"},
	}
	if err := rtnl.Qdisc().Add(&q); err != nil {
		return fmt.Errorf("add clsact qdisc: %w", err)
	}
	return d.markQdisc(ifaceKey{t.cookie, t.ifindex})
}

func hasClsact(rtnl *tc.Tc, ifindex int) (bool, error) {
	qdiscs, err := rtnl.Qdisc().Get()
	if err != nil {
		return false, fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qdiscs {
		if int(q.Ifindex) == ifindex && q.Kind == "clsact" {
			return true, nil
		}
	}
	return false, nil
}

// detachTC deletes our filter from the hook, if there; a link (or netns)
// that is gone has nothing left to delete.
func (d *Datapath) detachTC(ctx context.Context, t target, hook Hook) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := withTC(t, func(rtnl *tc.Tc) error {
		if has, err := hasClsact(rtnl, t.ifindex); err != nil || !has {
			return err
		}
		ours, err := ourFilter(rtnl, t.ifindex, hook)
		if err != nil || !ours {
			return err
		}
		obj := filterObject(t.ifindex, hook)
		obj.Kind = "bpf"
		if err := rtnl.Filter().Delete(&obj); err != nil {
			return fmt.Errorf("tc filter delete: %w", err)
		}
		return nil
	})
	if linkGone(err) {
		return nil
	}
	return err
}

// dropQdiscIfOurs deletes the clsact qdisc if this Datapath created it and
// no filter is left on either hook. A qdisc that was there before us is
// never ours (see qdiscmark.go).
func (d *Datapath) dropQdiscIfOurs(ctx context.Context, t target) error {
	key := ifaceKey{t.cookie, t.ifindex}
	if !d.qdiscs[key] || ctx.Err() != nil {
		return ctx.Err()
	}
	err := withTC(t, func(rtnl *tc.Tc) error {
		for _, hook := range []Hook{Ingress, Egress} {
			fs, err := rtnl.Filter().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(t.ifindex), Parent: tcParent(hook)})
			if err != nil || len(fs) > 0 {
				return err
			}
		}
		q := tc.Object{
			Msg:       tc.Msg{Family: unix.AF_UNSPEC, Ifindex: uint32(t.ifindex), Handle: clsactHandle, Parent: tc.HandleIngress},
			Attribute: tc.Attribute{Kind: "clsact"},
		}
		return rtnl.Qdisc().Delete(&q)
	})
	d.unmarkQdisc(key)
	if linkGone(err) {
		return nil
	}
	return err
}

// linkGone: netlink's answers for a device that is not there (any more).
func linkGone(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}
