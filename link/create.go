package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kinds of host-only links CreateHostOnly may make.
const (
	KindDummy  = "dummy"
	KindBridge = "bridge"
)

// CreateVLAN creates the 802.1q sub-interface p (p.Name on p.Lower with
// p.VID), labelled with alias, and brings it up. The lower link must exist
// (ErrNotFound otherwise) and p.Name must not (ErrExists). Without 8021q
// support in the kernel the error wraps ErrNotSupported. On any failure
// nothing is left behind.
func (h *Host) CreateVLAN(ctx context.Context, p Parent, alias string) error {
	if !p.IsVLAN() || p.Lower == "" {
		return fmt.Errorf("create vlan %s: not a NAME.VID parent", p.Name)
	}
	lower, err := linkByName(h.nl, p.Lower)
	if err != nil {
		return fmt.Errorf("create vlan %s: lower %w", p.Name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.ParentIndex = lower.Attrs().Index
	v := &netlink.Vlan{LinkAttrs: attrs, VlanId: p.VID}
	err = h.createLink(ctx, v, p.Name, alias, nil)
	if errors.Is(err, ErrNotSupported) {
		return &kernelError{
			msg: fmt.Sprintf("cannot create %s: this kernel has no 802.1q (8021q) support; "+
				"create the link yourself or load the 8021q module", p.Name),
			sentinel: ErrNotSupported, cause: err,
		}
	}
	if err != nil {
		return fmt.Errorf("create vlan %s: %w", p.Name, err)
	}
	return nil
}

// CreateHostOnly creates the link of a network without a parent: a dummy
// link, or where the kernel has no dummy driver a bridge without ports
// (which is up with carrier and accepts macvlan slaves just the same).
// IPv6 is disabled on it. It returns the kind it made.
func (h *Host) CreateHostOnly(ctx context.Context, name, alias string) (kind string, err error) {
	if err := checkName("host-only link", name); err != nil {
		return "", err
	}
	noV6 := func(tmp string) error { return setDisableIPv6(h.ns, tmp, true) }
	if !h.noDummy.Load() {
		d := &netlink.Dummy{LinkAttrs: netlink.NewLinkAttrs()}
		err = h.createLink(ctx, d, name, alias, noV6)
		if !errors.Is(err, ErrNotSupported) {
			return wrapHostOnly(KindDummy, name, err)
		}
		h.noDummy.Store(true)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	return wrapHostOnly(KindBridge, name, h.createLink(ctx, br, name, alias, noV6))
}

func wrapHostOnly(kind, name string, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("create host-only %s %s: %w", kind, name, err)
	}
	return kind, nil
}

// createLink creates l under a temporary name, DOWN, sets alias, runs
// prepare (if any) with the temporary name, renames it to name and brings it
// up. Any failure deletes the link. Kernels without the link's driver give
// an error wrapping ErrNotSupported.
func (h *Host) createLink(ctx context.Context, l netlink.Link, name, alias string, prepare func(tmp string) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := h.nl.LinkByName(name); err == nil {
		return fmt.Errorf("link %s %w", name, ErrExists)
	}
	tmp := tempName(h.tag)
	l.Attrs().Name = tmp
	l.Attrs().Alias = alias
	if err := h.nl.LinkAdd(l); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return &kernelError{msg: fmt.Sprintf("no %s driver in this kernel: %v", l.Type(), err),
				sentinel: ErrNotSupported, cause: err}
		}
		return fmt.Errorf("add %s link: %w", l.Type(), err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, h.undo(tmp, name, l.Attrs().Index))
		}
	}()
	return h.finishLink(ctx, l, tmp, name, alias, prepare)
}

func (h *Host) finishLink(ctx context.Context, l netlink.Link, tmp, name, alias string, prepare func(string) error) error {
	created, err := h.nl.LinkByName(tmp)
	if err != nil {
		return fmt.Errorf("find new link %s: %w", tmp, err)
	}
	l.Attrs().Index = created.Attrs().Index
	if alias != "" && created.Attrs().Alias != alias {
		if err := h.nl.LinkSetAlias(created, alias); err != nil {
			return fmt.Errorf("set alias: %w", err)
		}
	}
	if prepare != nil {
		if err := prepare(tmp); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := h.nl.LinkSetName(created, name); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, name, err)
	}
	err = h.nl.LinkSetUp(created)
	if errors.Is(err, unix.ENETDOWN) && l.Type() == "vlan" {
		return nil // its lower link is down: the kernel brings it up with it
	}
	if err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// undo deletes a link that createLink made, by index when known (so that a
// foreign link that took the final name in the meantime is never touched).
func (h *Host) undo(tmp, name string, index int) error {
	if index == 0 {
		return deleteByName(h.nl, tmp)
	}
	l, err := h.nl.LinkByIndex(index)
	if isNotFound(err) {
		return nil
	}
	if err == nil && l.Attrs().Name != tmp && l.Attrs().Name != name {
		return nil // index reused by someone else's link
	}
	if err == nil {
		err = h.nl.LinkDel(l)
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("roll back %s: %w", tmp, err)
	}
	return nil
}
