package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mvlan/mvlan/nsthread"
)

// A Docker endpoint's link is made in the agent's namespace and moved into
// its container by dockerd, which configures it and brings it up there
// before the agent can attach ep_ingress to it (FinishHandoff), with the
// kernel's defaults for IPv6 (accept_ra=1, autoconf=1). Until then the
// link carries handoff_guard (bpf/handoff_guard.c), attached with TCX: a
// TCX link moves with its device, a clsact qdisc is gone after the move.

// guardPin is where the TCX link of endpoint id's guard is pinned: with
// the endpoints' links, so that PruneLinks unpins it once its device is
// gone, and an agent restart keeps it.
func (d *Datapath) guardPin(id string) string {
	return filepath.Join(d.pinDir, "links", "handoff_"+id)
}

func checkGuardID(id string) error {
	if id == "" || len(id) > 128 || strings.Trim(id, "0123456789abcdefABCDEF") != "" {
		return fmt.Errorf("handoff guard of endpoint %q: want a hexadecimal endpoint ID", id)
	}
	return nil
}

// GuardHandoff attaches a guard to the ingress of link ifindex in the
// namespace at netnsPath, for endpoint id of network networkID: it drops the
// router advertisements and redirects ep_ingress would drop (ra_ignore,
// ra_source, ra_guard) and passes all else. It needs TCX. The attachment
// moves with the link into its container and stays until UnguardHandoff
// (once ep_ingress runs there) or the link is gone.
func (d *Datapath) GuardHandoff(netnsPath, id string, ifindex int, networkID uint32) error {
	if err := checkGuardID(id); err != nil {
		return err
	}
	if err := checkNetworkID(networkID); err != nil {
		return err
	}
	prog, err := d.loadAs("handoff_guard", "handoff_guard", map[string]any{"guard_network_id": networkID})
	if err != nil {
		return err
	}
	defer prog.Close() // the link holds it
	d.mu.Lock()
	d.ids.note(prog)
	d.mu.Unlock()
	pin := d.guardPin(id)
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return fmt.Errorf("create link pin directory: %w", err)
	}
	var l link.Link
	err = nsthread.DoPath(netnsPath, func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		return fmt.Errorf("guard ifindex %d: tcx: %w", ifindex, err)
	}
	if err := l.Pin(pin); err != nil {
		return errors.Join(fmt.Errorf("pin the guard's tcx link: %w", err), l.Close())
	}
	return l.Close()
}

// UnguardHandoff detaches endpoint id's guard, if it has one.
func (d *Datapath) UnguardHandoff(id string) error {
	if checkGuardID(id) != nil {
		return nil // no guard has that ID
	}
	l, err := link.LoadPinnedLink(d.guardPin(id), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open the guard's pinned link: %w", err)
	}
	if info, err := l.Info(); err == nil {
		d.mu.Lock()
		delete(d.ids.ours, info.Program)
		d.mu.Unlock()
	}
	return errors.Join(l.Unpin(), l.Close())
}
