package loader

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// Tamper is what was done to an endpoint's hooks that mvlan did not do (a
// container that is root in its namespace can).
type Tamper string

const (
	// TamperDetached: our program is no longer on the hook (tc qdisc del,
	// tc filter del, the TCX link detached).
	TamperDetached Tamper = "detached"
	// TamperForeignFirst: another program runs before ours on the hook
	// (a TCX program attached with BPF_F_BEFORE, a cls_bpf filter at a
	// lower priority) and may end the hook before ours runs.
	TamperForeignFirst Tamper = "foreign_first"
	// TamperLateFilter: a filter of a qdisc of the link's own on its
	// egress (a root HTB's, say), which runs after ours and may rewrite
	// a frame after the check (latefilter.go).
	TamperLateFilter Tamper = "late_filter"
)

// Tampers are the hook tampers, in the order they are reported.
var Tampers = []Tamper{TamperDetached, TamperForeignFirst, TamperLateFilter}

// Finding is one tamper on one hook.
type Finding struct {
	Hook   Hook
	Tamper Tamper
}

// InspectEndpoint reports what was done to the hooks of an endpoint this
// Datapath attached (AttachEndpoint): one finding per hook where our
// program is missing or is not the first to run, and one if filters of
// the link's own qdisc run after ours on egress (TamperLateFilter). A netns or link that is
// gone gives no findings. It enters the namespace once, for its cookie
// and both hooks, and holds d.mu only to read which hooks it attached
// (an attach waits for no kernel query of the tamper check).
func (d *Datapath) InspectEndpoint(ctx context.Context, netnsPath string, ifindex int) (out []Finding, err error) {
	if ifindex <= 0 {
		return nil, nil
	}
	entered := false
	err = nsthread.DoPath(netnsPath, func() error {
		entered = true
		cookie, err := cookieHere()
		if err != nil {
			return err
		}
		out, err = d.inspectHere(ctx, target{netns: netnsPath, cookie: cookie, ifindex: ifindex})
		return err
	})
	switch {
	case !entered || linkGone(err):
		return nil, nil // the namespace or the link went away
	case err != nil:
		return out, fmt.Errorf("inspect ifindex %d: %w", ifindex, err) // err names the namespace
	}
	return out, ctx.Err()
}

// inspectHere is InspectEndpoint from a thread in t's namespace: one
// rtnetlink socket for the tc hooks, opened when one is.
func (d *Datapath) inspectHere(ctx context.Context, t target) (out []Finding, err error) {
	wants := d.hookWants(t)
	rtnl := -1 // a bare rtnetlink socket (tcquery.go), opened when one is wanted
	defer func() {
		if rtnl >= 0 {
			err = errors.Join(err, unix.Close(rtnl))
		}
	}()
	socket := func() (int, error) {
		if rtnl < 0 {
			fd, err := rtnetlinkSocket() // in this thread's namespace
			if err != nil {
				return -1, fmt.Errorf("rtnetlink: %w", err)
			}
			rtnl = fd
		}
		return rtnl, nil
	}
	for _, hook := range []Hook{Ingress, Egress} {
		want, ok := wants[hook]
		if !ok || ctx.Err() != nil {
			continue
		}
		var tamper Tamper
		switch {
		case want.mode == ModeTCX:
			tamper, err = d.inspectTCX(t, hook)
		default:
			var fd int
			if fd, err = socket(); err == nil {
				tamper, err = inspectTC(fd, t, hook, want.prog)
			}
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", hook, err)
		}
		if tamper != "" {
			out = append(out, Finding{hook, tamper})
		}
		if hook == Egress {
			fd, err := socket()
			if err != nil {
				return out, err
			}
			late, err := hasLateFilters(ctx, fd, t)
			if late {
				out = append(out, Finding{hook, TamperLateFilter})
			}
			if err != nil {
				return out, fmt.Errorf("%s: %w", hook, err)
			}
		}
	}
	return out, nil
}

// hasLateFilters reports, on fd (an rtnetlink socket in t's namespace),
// whether filters run after ours on the egress of t's link (lateFilters):
// true also when they cannot all be listed (fail closed), with the error.
func hasLateFilters(ctx context.Context, fd int, t target) (bool, error) {
	filters, err := lateFilters(ctx, fd, t.ifindex)
	if err != nil && ctx.Err() == nil {
		return true, fmt.Errorf("late filters: %w", err)
	}
	return len(filters) > 0, err
}

// hookWant is what inspectHere expects on one hook: the mode it was
// attached in, and the ID of our program there (0: not known).
type hookWant struct {
	mode Mode
	prog ebpf.ProgramID
}

// hookWants returns what to expect on each hook of t this Datapath
// attached, or tried to: a hook whose attach failed (no record; a
// transient error, say) is expected in the mode that attach asked for.
func (d *Datapath) hookWants(t target) map[Hook]hookWant {
	d.mu.Lock()
	defer d.mu.Unlock()
	wants := map[Hook]hookWant{}
	p := d.epProgs[t.cookie]
	for _, hook := range []Hook{Ingress, Egress} {
		w := hookWant{}
		if a, ok := d.attached.get(attachKey{t.cookie, t.ifindex, hook}); ok {
			w.mode = a.Mode
		} else if p != nil {
			w.mode = p.users[t.ifindex]
		}
		if w.mode == "" {
			continue
		}
		if p != nil {
			w.prog = p.id(hook)
		}
		wants[hook] = w
	}
	return wants
}

// inspectTCX, from a thread in t's namespace: our pinned link must be
// alive on the hook, and its program first in the kernel's order.
func (d *Datapath) inspectTCX(t target, hook Hook) (Tamper, error) {
	l, err := link.LoadPinnedLink(d.linkPin(t, hook), nil)
	if err != nil {
		return TamperDetached, nil
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil || info.TCX() == nil || int(info.TCX().Ifindex) != t.ifindex {
		return TamperDetached, nil
	}
	res, err := link.QueryPrograms(link.QueryOptions{Target: t.ifindex, Attach: tcxAttachType(hook)})
	if err != nil {
		return "", err
	}
	if len(res.Programs) > 0 {
		if id, ok := res.Programs[0].LinkID(); !ok || id != info.ID {
			return TamperForeignFirst, nil
		}
	}
	return "", nil
}

// inspectTC, on fd (an rtnetlink socket in t's namespace): the clsact qdisc
// and our filter running prog must be there, with no other filter at a
// lower priority nor listed before ours at ours (cls_bpf runs a priority's
// filters newest first), and no TCX program (TCX runs before tc filters).
// Another filter in our place (priority and handle) is ours detached,
// whatever its kind or name: a container may put one there; ours gone
// while something runs ahead of our priority is foreign_first.
func inspectTC(fd int, t target, hook Hook, prog ebpf.ProgramID) (Tamper, error) {
	var tamper Tamper
	if tcxCount(t.ifindex, hook) > 0 {
		tamper = TamperForeignFirst
	}
	filters, err := dumpObjs(fd, unix.RTM_GETTFILTER, t.ifindex, tcParent(hook))
	// A filter too big for a dump message (a classic BPF or u32 filter of
	// tens of KiB) stops the dump (cut): the filters before it are read;
	// ours not among them, that one stands before ours.
	cut := errors.Is(err, unix.EMSGSIZE)
	switch {
	case errors.Is(err, unix.EINVAL): // no clsact qdisc (a kernel that says so; 6.x lists none)
		return TamperDetached, nil
	case err != nil && !cut:
		return "", fmt.Errorf("list tc filters: %w", err)
	}
	// ahead: something runs before our priority (a TCX program, a filter
	// or a priority's chain, handle 0, which a dump lists first).
	ours, ahead := false, tamper != ""
	for _, f := range filters {
		switch {
		case f.runs(prog):
			ours = true
		case f.prio() < FilterPriority:
			tamper, ahead = TamperForeignFirst, true
		case f.prio() == FilterPriority && !ours && f.handle != 0:
			tamper = TamperForeignFirst
		}
	}
	// Ours gone with something ahead is foreign_first, whose repair puts
	// ours before everything (TCX): attached again at our priority, it
	// would run after what is ahead.
	switch {
	case ours:
	case ahead || cut:
		tamper = TamperForeignFirst
	default:
		tamper = TamperDetached
	}
	return tamper, nil
}

// evictSquatters deletes, from a tc hook of t, every filter at our
// priority that is not ours running prog: in an endpoint's namespace one
// is a container's, put there to take our place or to run before ours.
// A dump cut by a filter too big for its message evicts those read before
// it and fails.
func evictSquatters(t target, hook Hook, prog ebpf.ProgramID) error {
	return nsthread.DoPath(t.netns, func() error {
		fd, err := rtnetlinkSocket()
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		defer unix.Close(fd)
		filters, err := dumpObjs(fd, unix.RTM_GETTFILTER, t.ifindex, tcParent(hook))
		switch {
		case errors.Is(err, unix.EINVAL): // no clsact qdisc: nothing there
			return nil
		case err != nil && !errors.Is(err, unix.EMSGSIZE):
			return fmt.Errorf("list tc filters: %w", err)
		case err != nil:
			err = fmt.Errorf("list tc filters on %s: %w", hook, err)
		}
		errs := []error{err}
		for _, f := range filters {
			// (handle 0 is the priority's chain: deleting it deletes ours too)
			if f.prio() == FilterPriority && f.handle != 0 && !f.runs(prog) {
				if err := deleteFilters(fd, t.ifindex, f); err != nil && !errors.Is(err, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("delete the %s filter in our place on %s: %w", f.kind, hook, err))
				}
			}
		}
		return errors.Join(errs...)
	})
}

// tcxCount counts the TCX programs on the hook of link ifindex in the
// calling thread's namespace (0 where the kernel has no TCX).
func tcxCount(ifindex int, hook Hook) int {
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: tcxAttachType(hook)})
	if err != nil {
		return 0
	}
	return len(res.Programs)
}

// RepairEndpoint re-attaches the endpoint's programs on the hooks of the
// findings: a detached one again, in its mode; one that another program
// runs before is attached again with TCX before all others; late filters
// are deleted (deleteLateFilters). Under tc,
// filters a container put at our priority go first (evictSquatters), and
// a foreign-first hook moves to TCX (TCX programs run before every tc
// filter, so a foreign TCX program, or a cls_bpf filter at a lower
// priority, cannot be got ahead of otherwise) where the kernel has TCX;
// where it has not, ours stays where it is. The foreign program stays,
// after ours: it is not ours to remove, and after ep_egress it never runs
// (its pass is the hook's last word: bpf/include/mvlan.h); after
// ep_ingress it sees only what the container receives.
func (d *Datapath) RepairEndpoint(ctx context.Context, netnsPath string, ifindex int, findings []Finding) error {
	t, err := newTarget(netnsPath, ifindex)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	progs, ok := d.epProgs[t.cookie]
	if !ok {
		return fmt.Errorf("repair ifindex %d (%s): not attached by this agent", ifindex, nsName(netnsPath))
	}
	var errs []error
	for _, f := range findings {
		if f.Tamper == TamperLateFilter {
			errs = append(errs, deleteLateFilters(ctx, t))
			continue
		}
		a, ok := d.attached.get(attachKey{t.cookie, t.ifindex, f.Hook})
		if !ok && progs.users[t.ifindex] != "" { // its attach failed
			a, ok = Attachment{Program: epProgramName[f.Hook], Mode: progs.users[t.ifindex]}, true
		}
		if !ok {
			continue
		}
		prog := map[Hook]*ebpf.Program{Ingress: progs.ingress, Egress: progs.egress}[f.Hook]
		mode := a.Mode
		if mode == ModeTC {
			errs = append(errs, evictSquatters(t, f.Hook, progs.id(f.Hook)))
		}
		if tcx, _ := tcxAvailable(); f.Tamper == TamperForeignFirst && tcx {
			// Ours goes again, before all: detached first, since an
			// attached TCX link keeps its place when updated.
			errs = append(errs, d.detachTCX(t, f.Hook))
			mode = ModeTCX
		}
		errs = append(errs, d.attach(ctx, t, f.Hook, prog, a.Program, mode))
	}
	return errors.Join(errs...)
}

// epProgramName is the endpoint program of each hook.
var epProgramName = map[Hook]string{Ingress: "ep_ingress", Egress: "ep_egress"}

// tcxAvailable is haveTCX, probed once.
var tcxAvailable = sync.OnceValues(haveTCX)
