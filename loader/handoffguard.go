package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

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
	prog, err := d.guardProg(networkID)
	if err != nil {
		return err
	}
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
	return errors.Join(l.Unpin(), l.Close())
}

// handoffGuards are the guard programs, one per network, loaded (and
// verified) at the network's first guarded Join and shared by every link
// they guard after it; a link holds its program while attached.
type handoffGuards struct {
	mu    sync.Mutex
	progs map[uint32]*ebpf.Program // by network ID
}

// guardProg is network networkID's guard program, loaded if it is the
// first. Its ID is noted as the agent's (ForeignPrograms) as it is
// loaded; a tamper tick in between sees it once per network.
func (d *Datapath) guardProg(networkID uint32) (*ebpf.Program, error) {
	d.guards.mu.Lock()
	defer d.guards.mu.Unlock()
	if p := d.guards.progs[networkID]; p != nil {
		return p, nil
	}
	p, err := d.loadAs("handoff_guard", "handoff_guard", map[string]any{"guard_network_id": networkID})
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.ids.note(p)
	d.mu.Unlock()
	if d.guards.progs == nil {
		d.guards.progs = map[uint32]*ebpf.Program{}
	}
	d.guards.progs[networkID] = p
	return p, nil
}

// closeGuards closes the guard programs of the networks for which forget
// is true; the links that hold one keep it in the kernel.
func (d *Datapath) closeGuards(forget func(networkID uint32) bool) error {
	d.guards.mu.Lock()
	defer d.guards.mu.Unlock()
	var errs []error
	for id, p := range d.guards.progs {
		if forget(id) {
			errs = append(errs, p.Close())
			delete(d.guards.progs, id)
		}
	}
	return errors.Join(errs...)
}
