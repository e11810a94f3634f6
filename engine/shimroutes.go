package engine

// The host routes through a network's host shim (shim.go): one per
// address an endpoint of the network holds.

import (
	"fmt"
	"net/netip"
	"slices"
)

// syncShimRoutes makes the host routes through n's shim exactly the
// addresses n's endpoints hold. shimMu orders concurrent syncs, each
// reading the index after the one before it finished.
func (a *Engine) syncShimRoutes(n *network) error {
	n.shimMu.Lock()
	defer n.shimMu.Unlock()
	n.mu.Lock()
	if n.shim == nil {
		n.mu.Unlock()
		return nil
	}
	srcs := slices.Clone(n.shim.addrs)
	dsts := make([]netip.Addr, 0, len(n.byAddr))
	for addr := range n.byAddr {
		dsts = append(dsts, addr)
	}
	n.mu.Unlock()
	if err := a.host.SetShimRoutes(shimName(n), srcs, dsts); err != nil {
		return fmt.Errorf("host shim %s routes: %w", shimName(n), err)
	}
	return nil
}

// shimRoutesChanged syncs n's shim routes (a lease moved, a start
// settled the endpoints); a failure is logged (doctor reports the missing
// route).
func (a *Engine) shimRoutesChanged(n *network) {
	if err := a.syncShimRoutes(n); err != nil {
		a.log.Warn("host shim routes", "network", n.name(), "err", err)
	}
}

// shimRoutesIfMoved syncs n's shim routes when the addresses an endpoint
// may use (usableAddrs: those the index has) went from before to after
// (a lease that moved, expired or came back): rare, so the whole set.
func (a *Engine) shimRoutesIfMoved(n *network, before, after []netip.Prefix) {
	if !slices.Equal(before, after) {
		a.shimRoutesChanged(n)
	}
}

// shimRoutesAdded routes the host to en's addresses through n's shim
// once en is ready (an attach, a Docker join): a route per address of
// en's, not a sync of every endpoint's (the request path does no O(N)
// work; the refresh on link events and each start sync them all). A
// failure is logged, as above.
func (a *Engine) shimRoutesAdded(n *network, en *entry) {
	a.shimRoutesOf(n, en, a.host.AddShimRoutes)
}

// shimRoutesRemoved deletes the host routes through n's shim to the
// addresses en had, after its removal took it out of the index, except
// to those another endpoint of n holds by now (handed out again).
func (a *Engine) shimRoutesRemoved(n *network, en *entry) {
	a.shimRoutesOf(n, en, func(name string, _, dsts []netip.Addr) error { return a.host.DeleteShimRoutes(name, dsts) })
}

// shimRoutesOf calls change with n's shim's name and addresses and those
// of en's addresses that the index gives en (removed: that it gives no
// one), unless n has no shim. shimMu orders it with the other changes
// and the syncs.
func (a *Engine) shimRoutesOf(n *network, en *entry, change func(name string, srcs, dsts []netip.Addr) error) {
	n.shimMu.Lock()
	defer n.shimMu.Unlock()
	n.mu.Lock()
	if n.shim == nil {
		n.mu.Unlock()
		return
	}
	srcs := slices.Clone(n.shim.addrs)
	var dsts []netip.Addr
	for _, p := range en.ep.Addrs {
		if owner := n.byAddr[p.Addr()]; owner == en || en.gone && owner == nil {
			dsts = append(dsts, p.Addr())
		}
	}
	n.mu.Unlock()
	if len(dsts) == 0 {
		return
	}
	if err := change(shimName(n), srcs, dsts); err != nil {
		a.log.Warn("host shim routes", "network", n.name(), "err", err)
	}
}
