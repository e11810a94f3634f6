package engine

// The background work of cluster networks: the host's liveness in etcd
// (cluster.Client.Live, which also fences its blocks) and the reclaim of
// dead hosts' blocks, probed for on each network's parent first.

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/probe"
)

// reclaimEvery is how often the blocks of dead hosts are looked for: half
// the liveness TTL, at least a second.
func reclaimEvery(c *cluster.Config) time.Duration {
	ttl := c.TTL
	if ttl == 0 {
		ttl = cluster.DefaultTTL
	}
	return max(ttl/2, time.Second)
}

// runCluster keeps the host alive in etcd and reclaims dead hosts'
// blocks until ctx is done.
func (a *Engine) runCluster(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.cluster.Live(ctx)
	}()
	var joined uint64 // the lease epoch the memberships were put in
	every(ctx, reclaimEvery(a.cfg.Cluster), func(ctx context.Context) {
		if ep := a.cluster.Epoch(); ep != joined && a.rejoin(ctx) {
			joined = ep
		}
		a.reclaimClusters(ctx)
	})
	<-done
}

// rejoin makes sure etcd has this host as a member of each cluster
// network it has, after each new liveness lease (a host seen dead may have
// been forgotten: ForgetDead); false: etcd did not answer, try again.
func (a *Engine) rejoin(ctx context.Context) bool {
	for _, n := range a.networkList() {
		if _, ok := n.space.(*cluster.Space); !ok {
			continue
		}
		switch err := a.cluster.Join(ctx, n.name(), n.ID); {
		case errors.Is(err, cluster.ErrUnreachable):
			return false
		case errors.Is(err, cluster.ErrNetworkGone): // marked failed; the client warned
		case err != nil:
			a.log.Warn("cluster: cannot join the network again", "network", n.name(), "err", err)
		}
	}
	return true
}

// checkClusters returns the cluster networks etcd still defines as they
// are; one it does not is failed for good from then on (health).
func (a *Engine) checkClusters(ctx context.Context) []*network {
	var out []*network
	for _, n := range a.networkList() {
		if cs, ok := n.space.(*cluster.Space); ok && cs.Check(ctx) == nil {
			out = append(out, n)
		}
	}
	return out
}

// reclaimClusters gives back, network by network, the blocks of hosts
// dead for longer than the grace that nothing answers for on this host's
// parent of the network (of the networks checkClusters keeps).
func (a *Engine) reclaimClusters(ctx context.Context) {
	for _, n := range a.checkClusters(ctx) {
		cs := n.space.(*cluster.Space)
		n.mu.Lock()
		parent := n.Parent
		n.mu.Unlock()
		prober := func(ctx context.Context, addrs []netip.Addr) ([]netip.Addr, error) {
			return probe.InUse(ctx, a.cfg.HostNetns, parent, addrs, probe.Options{})
		}
		if _, err := cs.Reclaim(ctx, prober); err != nil && ctx.Err() == nil {
			a.log.Debug("cluster: reclaim", "network", n.name(), "err", err)
		}
		if _, err := a.cluster.ForgetDead(ctx, n.name(), n.ID); err != nil && ctx.Err() == nil {
			a.log.Debug("cluster: forget dead members", "network", n.name(), "err", err)
		}
	}
}

// ClusterCollectors are the metrics of the agent's etcd client (at zero
// without --cluster).
func (a *Engine) ClusterCollectors() []prometheus.Collector {
	if a.cluster == nil {
		return cluster.IdleCollectors()
	}
	return a.cluster.Collectors()
}
