package engine

// Leaving a cluster network, and the cluster networks this host has not
// joined (network ls).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/netconf"
)

// StatusNotJoined is the status network ls shows for a cluster network
// defined in etcd that this host has not joined.
const StatusNotJoined = "not joined here"

// leaveCluster gives this host's blocks and claims of cluster network
// name back and ends its membership; the last host to leave removes the
// definition. Failures are logged: the network is gone here already. It
// reports whether etcd took it all.
func (a *Engine) leaveCluster(ctx context.Context, name, id string) bool {
	gone, err := a.cluster.Leave(ctx, name, id)
	switch {
	case err != nil:
		a.log.Warn("cluster: network left here, but etcd did not take it all: this host's blocks or membership may stay", "network", name, "err", err)
		return false
	case gone:
		a.log.Info("cluster: the last host left the network; its definition is removed from etcd", "network", name)
	default:
		a.log.Info("cluster: left the network; other hosts keep it", "network", name)
	}
	return true
}

// forgetClusterFiles deletes what this host kept of the blocks and claims
// of cluster network name (ID id) in STATE_DIR/cluster/ID, once it has
// left it and no network here has the ID: a file left there would be
// taken for the blocks of a later membership.
func (a *Engine) forgetClusterFiles(name, id string) {
	if a.networkByID(id) != nil {
		return
	}
	if err := os.RemoveAll(filepath.Join(a.cfg.StateDir, "cluster", id)); err != nil {
		a.log.Warn("cluster: network left, but its local blocks file stays; it is checked against etcd if the network is joined again", "network", name, "err", err)
	}
}

// leaveFirst ends this host's membership of cluster network n and gives
// its blocks and claims back to etcd (cluster.LeaveOpen: the membership
// first, so that a late lease of n's pool fails), before n is removed
// here: an rm cut short then leaves nothing of this host in etcd that its
// state does not know. n takes no endpoint meanwhile (RemoveNetwork's
// startRemoval). An etcd that does not answer refuses the removal and
// leaves n as it was (stayInCluster, when etcd stopped answering half
// way; gone, if the last other member removed it meanwhile). Caller holds
// netOps.
func (a *Engine) leaveFirst(ctx context.Context, n *network, cs *cluster.Space) error {
	if err := a.cluster.Reachable(ctx); err != nil { // fail before changing anything
		return fmt.Errorf("cluster network %s is removed only while etcd answers (its blocks go back to the pool first): %w", n.name(), err)
	}
	cs.Close() // no lease or claim from now on
	gone, err := a.cluster.LeaveOpen(ctx, n.name(), n.ID)
	if err != nil {
		a.stayInCluster(ctx, n, cs)
		return fmt.Errorf("cluster network %s is removed only while etcd answers (its blocks go back to the pool first); it stays: %w", n.name(), err)
	}
	if gone {
		a.log.Info("cluster: the last host left the network; its definition is removed from etcd", "network", n.name())
	} else {
		a.log.Info("cluster: left the network; other hosts keep it", "network", n.name())
	}
	return nil
}

// stayInCluster takes n back after leaveFirst, its removal refused: its
// space leases and claims again, its blocks (some perhaps given back) are
// checked against etcd before they are used, and its membership is put
// back (also by its next lease or claim, if etcd does not answer now).
func (a *Engine) stayInCluster(ctx context.Context, n *network, cs *cluster.Space) {
	cs.Reopen()
	ctx = context.WithoutCancel(ctx)
	if err := errors.Join(a.cluster.Join(ctx, n.name(), n.ID), cs.Verify(ctx)); err != nil {
		a.log.Warn("cluster: network stays, but etcd did not confirm it; its blocks are checked before they are used", "network", n.name(), "err", err)
	}
}

// UnjoinedNetwork is the cluster network etcd defines and this host has
// not joined that ref names, as a network here is named (name, full ID or
// unique ID prefix), if there is one (UnjoinedNetworks).
func (a *Engine) UnjoinedNetwork(ctx context.Context, ref string) (api.Network, bool) {
	ns := a.UnjoinedNetworks(ctx)
	i := matchRef(len(ns), ref, true, func(i int) (string, string) { return ns[i].Name, ns[i].ID })
	if i < 0 {
		return api.Network{}, false
	}
	return ns[i], true
}

// unjoinedTimeout bounds the etcd request of network ls.
const unjoinedTimeout = time.Second

// UnjoinedNetworks returns the cluster networks defined in etcd that this
// host has not joined, with the status StatusNotJoined; none without
// --cluster or when etcd does not answer within a second.
func (a *Engine) UnjoinedNetworks(ctx context.Context) []api.Network {
	if a.cluster == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, unjoinedTimeout)
	defer cancel()
	defs, err := a.cluster.Definitions(ctx)
	if err != nil {
		a.log.Debug("network ls: cluster networks not listed", "err", err)
		return nil
	}
	joined := map[string]bool{}
	for _, n := range a.networkList() {
		joined[n.ID] = true
	}
	var out []api.Network
	for _, d := range defs {
		if joined[d.ID] {
			continue
		}
		v := api.Network{ID: d.ID, Name: d.Create.Name, Driver: api.Driver, Scope: api.ScopeCluster,
			Status: StatusNotJoined, IPv6: d.Create.IPv6, Internal: d.Create.Internal}
		if cfg, err := netconf.Parse(d.Create); err == nil {
			v.Pools = toAPIPools(cfg.Pools)
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// clusterDrift names the cluster networks of nets that etcd no longer
// defines as they are: they hand out no address here any more.
func clusterDrift(nets []*network) []string {
	var out []string
	for _, n := range nets {
		if f, ok := n.space.(failer); ok {
			if err := f.Failed(); err != nil {
				out = append(out, fmt.Sprintf("network %s: %v", n.name(), err))
			}
		}
	}
	return out
}
