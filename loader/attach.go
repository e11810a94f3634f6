package loader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Mode is how programs are attached to a link's TC hooks.
type Mode string

const (
	// ModeTCX attaches with TCX links (Linux >= 6.6), pinned under
	// pinDir/links.
	ModeTCX Mode = "tcx"
	// ModeTC attaches with a clsact qdisc and direct-action cls_bpf filters
	// at priority FilterPriority, handle FilterHandle.
	ModeTC Mode = "tc"
)

// Hook is a TC hook of a link.
type Hook string

const (
	Ingress Hook = "ingress"
	Egress  Hook = "egress"
)

// Attachment is a program this Datapath attached (for mvlan_attach_info).
type Attachment struct {
	Netns       string // netns path given to Attach* ("" is the agent's)
	NetnsCookie uint64
	Ifindex     int
	Hook        Hook
	Program     string // ep_ingress, ep_egress, parent_ingress, parent_egress
	Mode        Mode
}

type attachKey struct {
	cookie  uint64
	ifindex int
	hook    Hook
}

type ifaceKey struct {
	cookie  uint64
	ifindex int
}

// target is one link in one netns.
type target struct {
	netns   string
	cookie  uint64
	ifindex int
}

// ErrNoTCX is wrapped by ResolveMode's error when tcx is asked for and the
// kernel has no TCX (Linux < 6.6).
var ErrNoTCX = errors.New("the kernel has no TCX (needs Linux 6.6)")

// ResolveMode turns --attach-mode (auto, tcx or tc) into a Mode: auto picks
// TCX where the kernel has it, else tc; tcx fails where the kernel lacks it.
// The probe attaches nothing (it asks for a link on a nonexistent ifindex).
func ResolveMode(want string) (Mode, error) {
	switch want {
	case "tc":
		return ModeTC, nil
	case "auto", "tcx":
	default:
		return "", fmt.Errorf("attach mode %q: want auto, tcx or tc", want)
	}
	ok, err := haveTCX()
	switch {
	case err != nil:
		return "", err
	case ok:
		return ModeTCX, nil
	case want == "auto":
		return ModeTC, nil
	}
	return "", fmt.Errorf("attach mode tcx: %w; use tc or auto", ErrNoTCX)
}

func haveTCX() (bool, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		return false, fmt.Errorf("probe tcx: load program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{Interface: math.MaxInt32, Program: prog, Attach: ebpf.AttachTCXIngress})
	switch {
	case err == nil:
		return true, l.Close()
	case errors.Is(err, unix.ENODEV):
		return true, nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return false, nil
	}
	return false, fmt.Errorf("probe tcx: %w", err)
}

// AttachEndpoint attaches ep_ingress and ep_egress to the endpoint's macvlan
// slave (ifindex inside the netns at netnsPath). Call SetEndpoint first:
// until the endpoint is in the table its programs drop everything
// (no_endpoint). Calling
// it again (e.g. after an agent restart, or with another mode) replaces our
// programs and never adds a second copy.
func (d *Datapath) AttachEndpoint(ctx context.Context, netnsPath string, ifindex int, mode Mode) error {
	t, err := newTarget(netnsPath, ifindex)
	if err != nil {
		return err
	}
	return d.attachEndpoint(ctx, t, mode, false)
}

// AttachEndpointIn is AttachEndpoint for a namespace whose cookie the
// caller has read already (NetnsCookie).
func (d *Datapath) AttachEndpointIn(ctx context.Context, netnsPath string, cookie uint64, ifindex int, mode Mode) error {
	if ifindex <= 0 {
		return fmt.Errorf("ifindex %d: want a positive ifindex", ifindex)
	}
	return d.attachEndpoint(ctx, target{netns: netnsPath, cookie: cookie, ifindex: ifindex}, mode, false)
}

// AttachNewEndpoint is AttachEndpointIn for a link the caller has just
// made, which nothing can be attached to yet: nothing is looked for before
// the attach (in tc mode the qdisc and filters are created exclusively,
// tcnew.go; in TCX mode no clsact filter of ours is looked for). Should
// something be there after all, it does what AttachEndpointIn does.
func (d *Datapath) AttachNewEndpoint(ctx context.Context, netnsPath string, cookie uint64, ifindex int, mode Mode) error {
	if ifindex <= 0 {
		return fmt.Errorf("ifindex %d: want a positive ifindex", ifindex)
	}
	return d.attachEndpoint(ctx, target{netns: netnsPath, cookie: cookie, ifindex: ifindex}, mode, true)
}

func (d *Datapath) attachEndpoint(ctx context.Context, t target, mode Mode, fresh bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	progs, err := d.endpointPrograms(t.cookie)
	if err != nil {
		return err
	}
	progs.users[t.ifindex] = mode
	rtnl := progs.takeSocket() // prepared for the namespace's first attach only
	if rtnl != nil {
		defer rtnl.Close()
	}
	if fresh {
		return d.attachNewPair(ctx, t, mode, rtnl, progs.ingress, progs.egress)
	}
	err = d.attachPair(ctx, t, mode, progs.ingress, progs.egress, "ep_ingress", "ep_egress")
	if errors.Is(err, errForeignFilter) {
		// The container holds our place on its link's hooks (to fail this
		// attach, at a restart say): taken back, as a repair does.
		err = errors.Join(evictSquatters(t, Ingress, progs.id(Ingress)), evictSquatters(t, Egress, progs.id(Egress)))
		if err == nil {
			err = d.attachPair(ctx, t, mode, progs.ingress, progs.egress, "ep_ingress", "ep_egress")
		}
	}
	return err
}

// attachNewPair is attachPair of the endpoint programs for a link just
// made (AttachNewEndpoint); rtnl, if not nil, is an rtnetlink socket in
// its namespace.
func (d *Datapath) attachNewPair(ctx context.Context, t target, mode Mode, rtnl *os.File, in, eg *ebpf.Program) error {
	var err error
	switch mode {
	case ModeTC:
		err = d.createTCHooks(ctx, t, rtnl, tcHook{Ingress, in, "ep_ingress"}, tcHook{Egress, eg, "ep_egress"})
	case ModeTCX:
		if err = d.attachTCX(t, Ingress, in); err == nil {
			err = d.attachTCX(t, Egress, eg)
		}
	default:
		return fmt.Errorf("attach mode %q: want %s or %s", mode, ModeTCX, ModeTC)
	}
	if err != nil {
		return fmt.Errorf("attach ep_ingress and ep_egress to ifindex %d (%s): %w", t.ifindex, nsName(t.netns), err)
	}
	d.noteAttached(t, Ingress, "ep_ingress", mode)
	d.noteAttached(t, Egress, "ep_egress", mode)
	return nil
}

// AttachParent attaches parent_ingress and parent_egress to a parent link or
// trunk (ifindex inside the netns at netnsPath, "" for the agent's own).
// Idempotent like AttachEndpoint.
func (d *Datapath) AttachParent(ctx context.Context, netnsPath string, ifindex int, mode Mode) error {
	t, err := newTarget(netnsPath, ifindex)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attachPair(ctx, t, mode, d.parentIngress, d.parentEgress, "parent_ingress", "parent_egress")
}

func newTarget(netnsPath string, ifindex int) (target, error) {
	if ifindex <= 0 {
		return target{}, fmt.Errorf("ifindex %d: want a positive ifindex", ifindex)
	}
	cookie, err := NetnsCookie(netnsPath)
	if err != nil {
		return target{}, err
	}
	return target{netns: netnsPath, cookie: cookie, ifindex: ifindex}, nil
}

func (d *Datapath) attachPair(ctx context.Context, t target, mode Mode, in, eg *ebpf.Program, inName, egName string) error {
	if mode == ModeTC { // both hooks through one rtnetlink socket; TCX off once on
		err := d.attachTCHooks(ctx, t, tcHook{Ingress, in, inName}, tcHook{Egress, eg, egName})
		if err == nil {
			d.noteAttached(t, Ingress, inName, mode)
			d.noteAttached(t, Egress, egName, mode)
			err = errors.Join(d.detachTCX(t, Ingress), d.detachTCX(t, Egress))
		}
		if err != nil {
			return fmt.Errorf("attach %s and %s to ifindex %d (%s): %w", inName, egName, t.ifindex, nsName(t.netns), err)
		}
		return nil
	}
	if err := d.attach(ctx, t, Ingress, in, inName, mode); err != nil {
		return err
	}
	return d.attach(ctx, t, Egress, eg, egName, mode)
}

// attach puts prog on one hook in mode, then removes what we attached
// there in the other mode: a failed attach leaves the hook as it was, not
// bare (both only drop, so that both run for a moment is harmless).
// Once the new one is on it is recorded, whether or not the other comes
// off (an error then says so; the record is right either way).
func (d *Datapath) attach(ctx context.Context, t target, hook Hook, prog *ebpf.Program, name string, mode Mode) error {
	var err error
	switch mode {
	case ModeTCX:
		err = d.attachTCX(t, hook, prog)
	case ModeTC:
		err = d.attachTC(ctx, t, hook, prog, name)
	default:
		return fmt.Errorf("attach mode %q: want %s or %s", mode, ModeTCX, ModeTC)
	}
	if err == nil {
		d.noteAttached(t, hook, name, mode)
		if mode == ModeTCX {
			err = d.detachTC(ctx, t, hook)
		} else {
			err = d.detachTCX(t, hook)
		}
	}
	if err != nil {
		return fmt.Errorf("attach %s to ifindex %d (%s) %s: %w", name, t.ifindex, nsName(t.netns), hook, err)
	}
	return nil
}

// noteAttached records program name on t's hook in mode. Caller holds mu.
func (d *Datapath) noteAttached(t target, hook Hook, name string, mode Mode) {
	d.unlinger(attachKey{t.cookie, t.ifindex, hook})
	d.attached.set(attachKey{t.cookie, t.ifindex, hook}, Attachment{
		Netns: t.netns, NetnsCookie: t.cookie, Ifindex: t.ifindex, Hook: hook, Program: name, Mode: mode,
	})
}

// NetnsNamed records that the namespace with this cookie, whose endpoint
// ifindex was attached through another path (a namespace not named yet,
// reached through a file: link.Spare), is at netnsPath now.
func (d *Datapath) NetnsNamed(cookie uint64, ifindex int, netnsPath string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, hook := range []Hook{Ingress, Egress} {
		k := attachKey{cookie, ifindex, hook}
		if a, ok := d.attached.get(k); ok {
			a.Netns = netnsPath
			d.attached.set(k, a)
		}
	}
}

func nsName(netnsPath string) string {
	if netnsPath == "" {
		return "own netns"
	}
	return netnsPath
}
