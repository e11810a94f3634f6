package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mvlan/mvlan/nsthread"
)

// linkPin is where the TCX link of one hook is pinned:
// pinDir/links/<netns cookie>_<ifindex>_<hook>.
func (d *Datapath) linkPin(t target, hook Hook) string {
	return filepath.Join(d.pinDir, "links", fmt.Sprintf("%d_%d_%s", t.cookie, t.ifindex, hook))
}

func tcxAttachType(hook Hook) ebpf.AttachType {
	if hook == Ingress {
		return ebpf.AttachTCXIngress
	}
	return ebpf.AttachTCXEgress
}

// attachTCX updates our pinned link in place if it is still attached to the
// link, else attaches a new link in the target netns, before every other
// program on the hook, and pins it.
func (d *Datapath) attachTCX(t target, hook Hook, prog *ebpf.Program) error {
	pin := d.linkPin(t, hook)
	updated, err := updatePinnedLink(pin, t.ifindex, prog)
	if err != nil || updated {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return fmt.Errorf("create link pin directory: %w", err)
	}
	var l link.Link
	err = nsthread.DoPath(t.netns, func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: t.ifindex, Program: prog, Attach: tcxAttachType(hook), Anchor: link.Head()})
		return err
	})
	if err != nil {
		return fmt.Errorf("tcx: %w", err)
	}
	if err := l.Pin(pin); err != nil {
		return errors.Join(fmt.Errorf("pin tcx link: %w", err), l.Close())
	}
	return l.Close()
}

// updatePinnedLink replaces the program of the link pinned at pin when that
// link is alive on ifindex. A defunct link (its device is gone, or it is on
// another device) is unpinned.
func updatePinnedLink(pin string, ifindex int, prog *ebpf.Program) (bool, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open pinned link %s: %w", pin, err)
	}
	defer l.Close()
	if !tcxLinkAlive(l, ifindex) {
		return false, l.Unpin()
	}
	if err := l.Update(prog); err != nil {
		return false, fmt.Errorf("update pinned link %s: %w", pin, err)
	}
	return true, nil
}

// tcxLinkAlive reports whether l is a TCX link attached to ifindex (the
// kernel reports ifindex 0 once the device is gone).
func tcxLinkAlive(l link.Link, ifindex int) bool {
	info, err := l.Info()
	if err != nil || info.TCX() == nil {
		return false
	}
	return info.TCX().Ifindex != 0 && int(info.TCX().Ifindex) == ifindex
}

// detachTCX unpins and closes our link on the hook, which detaches it.
func (d *Datapath) detachTCX(t target, hook Hook) error {
	l, err := link.LoadPinnedLink(d.linkPin(t, hook), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open pinned link: %w", err)
	}
	return errors.Join(l.Unpin(), l.Close())
}

// forgetTCX unpins t's TCX link on hook once its device is gone, as
// PruneLinks does: false (pin kept) while the link is still on a live
// device, whose programs must stay (its caller could not delete it).
func (d *Datapath) forgetTCX(t target, hook Hook) (bool, error) {
	l, err := link.LoadPinnedLink(d.linkPin(t, hook), nil)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open pinned link: %w", err)
	}
	if !tcxDeviceGone(l) {
		return false, l.Close()
	}
	return true, errors.Join(l.Unpin(), l.Close())
}

// tcxDeviceGone reports whether TCX link l's device is gone (the kernel
// detached it when the device was unregistered).
func tcxDeviceGone(l link.Link) bool {
	info, err := l.Info()
	return err == nil && info.TCX() != nil && info.TCX().Ifindex == 0
}

// PruneLinks unpins TCX links whose device is gone (e.g. the netns of an
// endpoint was deleted while the agent was down). It returns how many it
// removed. Call it after re-attaching everything on agent start.
func (d *Datapath) PruneLinks() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pruneLinksLocked()
}

func (d *Datapath) pruneLinksLocked() (int, error) {
	entries, err := os.ReadDir(filepath.Join(d.pinDir, "links"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune links: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		pin := filepath.Join(d.pinDir, "links", e.Name())
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("open pinned link %s: %w", pin, err))
			continue
		}
		if tcxDeviceGone(l) {
			errs = append(errs, l.Unpin())
			n++
		}
		errs = append(errs, l.Close())
	}
	return n, errors.Join(errs...)
}
