package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
)

// Reconcile brings the kernel in line with the state: it rebuilds the
// address spaces, recreates the links mvlan owns that are missing, removes
// links marked as this agent's that no network needs (and half-made ones),
// and records what it cannot fix as the network's status instead of failing.
func (a *Engine) Reconcile(ctx context.Context) error {
	start := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.loadState(); err != nil {
		return err
	}
	links, err := a.host.Links()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	present := a.removeStale(links)
	for _, n := range a.nets {
		n.status = a.ensureParent(ctx, n, present)
		if !n.ok() {
			continue
		}
		if err := a.attachNetwork(ctx, n); err != nil {
			n.status = health{status: StatusDatapathFailed, parent: n.Parent, err: err}
			a.log.Warn("cannot attach the datapath", "network", n.Name, "err", err)
		}
	}
	if err := a.pruneDatapath(); err != nil {
		a.log.Warn("prune datapath", "err", err)
	}
	if err := a.reconcileEndpoints(ctx); err != nil {
		return err
	}
	a.log.Info("reconciled", "networks", len(a.nets), "took", time.Since(start))
	return nil
}

// loadState reads networks and endpoints and rebuilds each address space
// from the addresses the endpoints hold.
func (a *Engine) loadState() error {
	nets, err := a.store.Networks()
	if err != nil {
		return fmt.Errorf("read networks: %w", err)
	}
	eps, err := a.store.Endpoints()
	if err != nil {
		return fmt.Errorf("read endpoints: %w", err)
	}
	held := map[string][]ipam.Held{}
	for _, e := range eps {
		for _, p := range e.Addrs {
			held[e.NetworkID] = append(held[e.NetworkID], ipam.Held{Addr: p.Addr(), Owner: e.Name})
		}
	}
	a.nets = make(map[string]*network, len(nets))
	for _, n := range nets {
		space, err := ipam.New(fromAPIPools(n.Pools), ipam.Options{Serial: n.Serial})
		if err != nil {
			return fmt.Errorf("network %s: stored pools: %w", n.Name, err)
		}
		if err := space.Load(held[n.ID]); err != nil {
			return fmt.Errorf("network %s: stored addresses: %w", n.Name, err)
		}
		a.nets[n.ID] = &network{Network: n, space: space}
	}
	return nil
}

// removeStale deletes half-made links and links marked as this agent's
// that no network needs; it returns the links that remain, by name.
func (a *Engine) removeStale(links []link.Info) map[string]link.Info {
	want := map[string]string{} // link name -> network ID
	for _, n := range a.nets {
		if n.OwnsParent() {
			want[n.Parent] = n.ID
		}
	}
	prefix := a.aliasPrefix()
	tmp := link.TempPrefixFor(a.store.AgentID())
	present := map[string]link.Info{}
	for _, l := range links {
		stale := strings.HasPrefix(l.Name, tmp)
		if rest, ok := strings.CutPrefix(l.Alias, prefix); ok {
			kind, id, _ := strings.Cut(rest, "/")
			stale = stale || kind != "net" || want[l.Name] != id
		}
		if !stale {
			present[l.Name] = l
			continue
		}
		if err := a.host.Delete(l.Name); err != nil {
			a.log.Warn("cannot remove stale link", "link", l.Name, "alias", l.Alias, "err", err)
			present[l.Name] = l
			continue
		}
		a.log.Info("removed stale link", "link", l.Name, "alias", l.Alias)
	}
	return present
}

// ensureParent recreates a missing owned parent and reports the status.
func (a *Engine) ensureParent(ctx context.Context, n *network, present map[string]link.Info) health {
	if l, ok := present[n.Parent]; ok {
		if n.OwnsParent() && l.Alias != a.alias("net", n.ID) {
			return health{status: StatusParentForeign, parent: n.Parent}
		}
		return healthy()
	}
	if !n.OwnsParent() {
		a.log.Warn("parent link missing", "network", n.Name, "parent", n.Parent)
		return health{status: StatusParentMissing, parent: n.Parent}
	}
	if err := a.createOwned(ctx, &n.Network); err != nil {
		err = untag(err)
		a.log.Warn("cannot recreate parent", "network", n.Name, "parent", n.Parent, "err", err)
		return health{status: StatusParentFailed, parent: n.Parent, err: err}
	}
	a.log.Info("recreated parent", "network", n.Name, "parent", n.Parent)
	return healthy()
}
