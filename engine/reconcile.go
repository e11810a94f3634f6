package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
)

// Start brings the kernel in line with the state: it reads the state into
// the index, rebuilding the address spaces (loadState); finishes the
// handed-off endpoints whose link was moved while no one watched
// (finishHandoffs); recreates the links mvlan owns that are missing,
// removes links marked as this agent's that no network needs (and
// half-made ones) and attaches the parents' programs, recording what it
// cannot fix as the network's status instead of failing
// (reconcileNetworks); and undoes, forgets or re-attaches endpoints
// (reconcileEndpoints). Every start-up decision is made here, in this
// order, before any front end is served.
func (a *Engine) Start(ctx context.Context) error {
	start := time.Now()
	a.netOps.Lock()
	defer a.netOps.Unlock()
	orphans, err := a.loadState()
	if err != nil {
		return err
	}
	a.settleIntents(ctx)
	a.finishHandoffs()
	if err := a.reconcileNetworks(ctx); err != nil {
		return err
	}
	if err := a.reconcileEndpoints(ctx, orphans); err != nil {
		return err
	}
	for _, n := range a.networkList() {
		n.mu.Lock()
		ok := n.status.status == StatusOK // as the parent refresh decides
		n.mu.Unlock()
		if ok {
			n.linked() // else linksAt stays 0: a parent found later has them made again
		}
		a.shimRoutesChanged(n) // the endpoints are settled now
		if n.DHCP {
			a.keepAll(n) // each lease goes on from its stored times
		}
	}
	a.log.Info("reconciled", "networks", len(a.nets), "took", time.Since(start))
	return nil
}

// reconcileNetworks makes each network's parent and parent programs right.
func (a *Engine) reconcileNetworks(ctx context.Context) error {
	links, err := a.host.Links()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	present := a.removeStale(links)
	for _, n := range a.networkList() {
		st := a.ensureParent(ctx, n, present)
		if st.status == StatusOK {
			if err := a.attachNetwork(ctx, n, nil); err != nil {
				st = health{status: StatusDatapathFailed, parent: n.Parent, err: err}
				a.log.Warn("cannot attach the datapath", "network", n.name(), "err", err)
			}
			a.ensureShim(ctx, n, present)
		}
		n.mu.Lock()
		n.status = st
		n.mu.Unlock()
	}
	if err := a.pruneDatapath(ctx); err != nil {
		a.log.Warn("prune datapath", "err", err)
	}
	return nil
}

// loadState reads networks and endpoints into the index and rebuilds each
// address space from the addresses the endpoints hold. It returns the
// endpoints whose network is not in the state.
func (a *Engine) loadState() ([]endpoint, error) {
	nets, skipped, err := a.loadNetworks()
	if err != nil {
		return nil, err
	}
	held, orphans, err := a.loadEndpoints(nets, skipped)
	if err != nil {
		return nil, err
	}
	quarantined := a.settleQuarantined(nets)
	a.strayHeld = quarantined[""]
	for _, n := range nets {
		var shim []ipam.Held
		if n.shim != nil {
			for _, addr := range n.shim.addrs {
				shim = append(shim, ipam.Held{Addr: addr, Owner: shimOwner})
			}
		}
		q := quarantined[n.ID]
		err := a.loadSpace(n, slices.Concat(shim, held[n.ID], q))
		if err != nil {
			q, err = a.loadSparing(n, shim, held[n.ID], q, err)
		}
		if err != nil {
			return nil, err
		}
		n.holdQuarantined(q)
	}
	a.mu.Lock()
	a.nets = nets
	a.mu.Unlock()
	return orphans, nil
}

// loadNetworks reads the stored networks; those that cannot be used are
// quarantined and skipped.
func (a *Engine) loadNetworks() (nets map[string]*network, skipped map[string]bool, err error) {
	stored, err := a.store.Networks()
	if err != nil {
		return nil, nil, fmt.Errorf("read networks: %w", err)
	}
	nets, skipped = make(map[string]*network, len(stored)), map[string]bool{}
	for _, sn := range stored {
		if scopeOf(sn.Options) == api.ScopeCluster && a.cluster == nil {
			return nil, nil, fmt.Errorf("network %s is a cluster network: start the agent with --cluster etcd://HOST:PORT, the cluster it was made in", sn.Name)
		}
		space, err := a.newSpace(cluster.Network{ID: sn.ID, Name: sn.Name}, fromAPIPools(sn.Pools), sn.Options, sn.Serial)
		if err != nil {
			err = fmt.Errorf("stored pools: %w", err)
		} else {
			nets[sn.ID], err = newNetwork(sn, space)
		}
		if err != nil {
			skipped[sn.ID] = true
			if err := a.quarantine(a.store.QuarantineNetwork, "network", sn.ID, sn.Name, err); err != nil {
				return nil, nil, err
			}
		}
	}
	return nets, skipped, nil
}

// loadEndpoints reads the stored endpoints into their networks' indexes
// and returns the addresses they hold per network, and the endpoints of
// no network (orphans). Those that cannot be used are quarantined.
func (a *Engine) loadEndpoints(nets map[string]*network, skipped map[string]bool) (held map[string][]ipam.Held, orphans []endpoint, err error) {
	apiEps, err := a.store.Endpoints()
	if err != nil {
		return nil, nil, fmt.Errorf("read endpoints: %w", err)
	}
	held = map[string][]ipam.Held{}
	for _, ae := range apiEps {
		if skipped[ae.NetworkID] {
			continue // quarantined with its network
		}
		e, err := endpointFromAPI(ae)
		if err != nil {
			if err := a.quarantine(a.store.QuarantineEndpoint, "endpoint", ae.ID, ae.Name, err); err != nil {
				return nil, nil, err
			}
			continue
		}
		n := nets[e.NetworkID]
		if n == nil {
			orphans = append(orphans, e)
			continue
		}
		n.add(e).busy.Unlock()
		if n.DHCP {
			continue // leased, not held in the network's space
		}
		for _, p := range e.Addrs {
			held[n.ID] = append(held[n.ID], ipam.Held{Addr: p.Addr(), Owner: e.Name})
		}
	}
	return held, orphans, nil
}

// loadSpace loads n's address space with the addresses held and the
// high-water marks of those released.
func (a *Engine) loadSpace(n *network, held []ipam.Held) error {
	if err := n.space.Load(held); err != nil {
		return fmt.Errorf("network %s: stored addresses: %w", n.name(), err)
	}
	hw, known, err := a.store.ReleasedHighWater(n.ID)
	if err != nil {
		return err
	}
	resumeSerial(n, held, hw)
	n.used = n.used.Raise(validAddrs(hw.V4, hw.V6)...)
	if !known { // an older mvlan's or a restored state: any address may have been held
		n.used = n.used.Raise(n.poolTops()...)
	}
	return nil
}

// resumer is an addrSpace whose serial allocation can go on where it was
// before a restart (*ipam.Space; cluster networks are never serial).
type resumer interface{ ResumeAfter(addrs ...netip.Addr) }

// resumeSerial makes serial allocation on n go on after the highest
// address of each range that was held (held) or given back (hw) before
// the restart, not from the range start: an address given back is not
// handed out again before the others of its lap.
func resumeSerial(n *network, held []ipam.Held, hw store.HighWater) {
	r, ok := n.space.(resumer)
	if !ok || !n.Serial {
		return
	}
	after := validAddrs(hw.V4, hw.V6)
	for _, h := range held {
		after = append(after, h.Addr)
	}
	r.ResumeAfter(after...)
}

// removeStale deletes half-made links and links marked as this agent's
// that no network needs, except those of quarantined records and, when
// this start replaced the state, every marked one (their containers may
// run); it returns the links that remain, by name.
func (a *Engine) removeStale(links []link.Info) map[string]link.Info {
	want := map[string]string{}    // "KIND/link name" -> network ID
	parents := map[string]string{} // link name -> the network it is the parent of
	for _, n := range a.networkList() {
		if !n.ParentKind.owned() {
			parents[n.Parent] = n.name() // an owned one with a stale mark is made again (ensureParent)
		}
		if n.ParentKind.owned() {
			want["net/"+n.Parent] = n.ID
		}
		if n.shimAddrs() != nil {
			want["shim/"+shimName(n)] = n.ID
		}
	}
	quarantined := a.quarantinedIDs()
	prefix := a.aliasPrefix()
	tmp := link.TempPrefixFor(a.store.AgentID())
	present := map[string]link.Info{}
	for _, l := range links {
		stale := strings.HasPrefix(l.Name, tmp)
		if rest, ok := strings.CutPrefix(l.Alias, prefix); ok {
			kind, id, _ := strings.Cut(rest, "/")
			stale = stale || want[kind+"/"+l.Name] != id
			if stale && quarantined.has(id) {
				a.log.Warn("keeping the link of a quarantined state record", "link", l.Name, "alias", l.Alias, "quarantine_unlisted", quarantined.unknown)
				stale = false
			}
			if stale && a.stateReplaced && !strings.HasPrefix(l.Name, tmp) {
				// A network made after the snapshot, say: deleting its
				// parent would take its containers' links with it.
				a.log.Warn("keeping a link marked as mvlan's for a network the state does not have: the state was replaced; remove the link once its containers are gone", "link", l.Name, "alias", l.Alias)
				stale = false
			}
			if net, ok := parents[l.Name]; stale && ok && !strings.HasPrefix(l.Name, tmp) {
				// A network made on it as an existing link since (one whose
				// removal could not delete it, say): it is that network's.
				a.log.Warn("keeping a link marked as mvlan's for a network that is gone: it is another network's parent", "link", l.Name, "alias", l.Alias, "network", net)
				stale = false
			}
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
// Caller holds netOps.
func (a *Engine) ensureParent(ctx context.Context, n *network, present map[string]link.Info) health {
	if l, ok := present[n.Parent]; ok {
		if n.ParentKind.owned() && l.Alias != a.alias("net", n.ID) {
			return health{status: StatusParentForeign, parent: n.Parent}
		}
		return healthy()
	}
	if !n.ParentKind.owned() {
		a.log.Warn("parent link missing", "network", n.name(), "parent", n.Parent)
		return health{status: StatusParentMissing, parent: n.Parent}
	}
	if err := a.createOwned(ctx, n); err != nil {
		err = untag(err)
		a.log.Warn("cannot recreate parent", "network", n.name(), "parent", n.Parent, "err", err)
		return health{status: StatusParentFailed, parent: n.Parent, err: err}
	}
	a.log.Info("recreated parent", "network", n.name(), "parent", n.Parent)
	return healthy()
}

// keepAttached, at start, leaves a ready endpoint as it is when the kernel
// shows what the state says (loader's AdoptEndpoint): its namespace is
// still the one with its cookie, and both hooks of its link (the stored
// ifindex: a filter or TCX link of ours goes with the link it was put on)
// run the endpoint programs (the shared ones, or that namespace's stubs)
// in a mode the endpoint may keep (restartMode's
// choice). Its table row is written again, as attachEndpointDP would. Any
// other endpoint takes the full path: link found or made, programs attached.
func (a *Engine) keepAttached(ctx context.Context, n *network, e endpoint) bool {
	if e.Ifindex == 0 || e.NetnsCookie == 0 {
		return false
	}
	mode, ok := a.dp.AdoptEndpoint(ctx, e.Netns, e.NetnsCookie, e.Ifindex)
	if !ok || (mode != a.modes.Endpoint && mode != a.modes.Live) {
		return false
	}
	return a.setTableEntry(n, e) == nil
}
