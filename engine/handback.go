package engine

// The way back of a handed-off endpoint (handoff.go): Docker's Leave,
// then the removal of its link, moved back to the host namespace, and
// of its record.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mvlan/mvlan/internal/crashpoint"
)

// Leave marks endpoint id "removing" and detaches its programs, before
// its link is moved back to the host namespace. Its table entry stays
// until RemoveHandoff has deleted the link (forgetEntry). An unknown
// endpoint is not an error.
func (a *Engine) Leave(ctx context.Context, id string) error {
	n, en := a.endpointByID(id)
	if en == nil {
		return nil // removed meanwhile (mvlan rm)
	}
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok {
		return nil
	}
	if err := a.markRemoving(n, en, &e); err != nil {
		return fmt.Errorf("leave %s: %w", e.Name, err)
	}
	crashpoint.Hit("docker-leave:after-state")
	a.leaveLease(ctx, n, en, &e)
	if err := a.detachPrograms(ctx, e); err != nil {
		a.log.Warn("Docker endpoint left, but its programs are not detached; removing it tries again", "name", e.Name, "err", err)
		return nil
	}
	a.log.Info("Docker endpoint left", "name", e.Name)
	return nil
}

// RemoveHandoff removes endpoint id's link (in the host namespace, where
// it was moved back, or still in the sandbox) and its record. Its
// addresses for which keep is true stay reserved under owner (their
// reserver releases them); the others are released, and so is a DHCP
// lease that Leave did not give back. An unknown endpoint is not an
// error.
func (a *Engine) RemoveHandoff(ctx context.Context, id, owner string, keep func(netip.Addr) bool) error {
	n, en := a.endpointByID(id)
	if en == nil {
		return nil
	}
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok {
		return nil
	}
	if err := a.markRemoving(n, en, &e); err != nil {
		return fmt.Errorf("remove %s: %w", e.Name, err)
	}
	crashpoint.Hit("docker-rm:after-state")
	// Recorded as removing: finished whatever becomes of dockerd's request
	// (Docker does not ask again), as removeEndpoint does.
	ctx = context.WithoutCancel(ctx)
	if a.releaseLease(ctx, n, e) { // one Leave did not give back (dhcphandoff.go)
		a.givenBack(n, en, &e)
	}
	derr := a.detachPrograms(ctx, e)
	_, terr := a.teardown(ctx, e)
	err := errors.Join(derr, terr, a.deleteHandedBack(n, e))
	if err == nil {
		err = a.forgetEntry(e) // the link is gone
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", e.Name, err)
	}
	if err := a.store.DeleteEndpoint(e.ID); err != nil {
		return fmt.Errorf("forget endpoint %s: %w", e.Name, err)
	}
	n.mu.Lock()
	for _, p := range e.Addrs {
		if keep(p.Addr()) && n.byAddr[p.Addr()] == en {
			delete(n.byAddr, p.Addr())
			_ = reown(n.space, []netip.Prefix{p}, owner)
		}
	}
	n.drop(en)
	n.mu.Unlock()
	a.shimRoutesRemoved(n, en)
	a.log.Info("Docker endpoint removed", "name", e.Name, "addrs", e.Addrs)
	return nil
}

// deleteHandedBack deletes e's link where Docker moves it back to, the
// host namespace: by our alias, or, when the container changed that (it
// can, with CAP_NET_ADMIN, before it left), the macvlan on the network's
// parent with e's MAC. Left there, it would keep the MAC from the next
// endpoint with e's address (Docker derives MACs from addresses).
func (a *Engine) deleteHandedBack(n *network, e endpoint) error {
	links, err := a.host.Links()
	if err != nil {
		return err
	}
	alias := a.alias("ep", e.ID)
	parent, _ := n.indexes()
	var byAlias, byMAC []string
	for _, l := range links {
		switch {
		case l.Alias == alias:
			byAlias = append(byAlias, l.Name)
		case parent != 0 && len(e.MAC) > 0 && l.Kind == "macvlan" && l.ParentIndex == parent && bytes.Equal(l.MAC, e.MAC):
			byMAC = append(byMAC, l.Name)
		}
	}
	if len(byAlias) == 0 {
		byAlias = byMAC
	}
	var errs []error
	for _, name := range byAlias {
		errs = append(errs, a.host.Delete(name))
	}
	return errors.Join(errs...)
}
