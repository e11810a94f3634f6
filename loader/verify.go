package loader

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/florianl/go-tc"
)

// Missing asks the kernel which hooks of a link (ifindex inside the netns
// at netnsPath) lack our program in the given mode: a pinned TCX link
// alive on the device, or our cls_bpf filter. None means both are in
// place. It changes nothing.
func (d *Datapath) Missing(netnsPath string, ifindex int, mode Mode) ([]Hook, error) {
	t, err := newTarget(netnsPath, ifindex)
	if err != nil {
		return nil, err
	}
	var missing []Hook
	for _, hook := range []Hook{Ingress, Egress} {
		ok, err := d.inKernel(t, hook, mode)
		if err == nil && !ok && mode == ModeTC {
			ok, err = d.inKernel(t, hook, ModeTCX) // a live link's (Modes.Live), or a repair's
		}
		if err != nil {
			return nil, fmt.Errorf("%s of ifindex %d in %s: %w", hook, ifindex, nsName(netnsPath), err)
		}
		if !ok {
			missing = append(missing, hook)
		}
	}
	return missing, nil
}

func (d *Datapath) inKernel(t target, hook Hook, mode Mode) (bool, error) {
	if mode == ModeTC {
		want := d.progID(t, hook)
		var ok bool
		err := withTC(t, func(rtnl *tc.Tc) error {
			id, found, err := ourFilterProg(rtnl, t.ifindex, hook)
			ok = found && (want == 0 || id == want) // a filter named as ours runs ours
			return err
		})
		return ok, err
	}
	l, err := link.LoadPinnedLink(d.linkPin(t, hook), nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer l.Close()
	return tcxLinkAlive(l, t.ifindex), nil
}

// progID is the ID of the program this Datapath attaches on t's hook, 0
// when it has none for t's namespace (yet).
func (d *Datapath) progID(t target, hook Hook) ebpf.ProgramID {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.epProgs[t.cookie]; p != nil {
		return p.id(hook)
	}
	return 0
}
