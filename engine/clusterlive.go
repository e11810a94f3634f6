package engine

// The background work of cluster networks: the host's liveness in etcd
// (cluster.Client.Live, which also fences its blocks) and the reclaim of
// dead hosts' blocks, probed for on each network's parent first.

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
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

// rejoinTicks is how many reclaim ticks go by between rejoins within one
// lease (30 s at the default TTL): a membership a create or leave cut
// short left in etcd (a join that timed out yet was applied, a leave
// that failed) goes then, not only at the next lease.
const rejoinTicks = 6

// runCluster keeps the host alive in etcd and reclaims dead hosts'
// blocks until ctx is done.
func (a *Engine) runCluster(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.cluster.Live(ctx)
	}()
	var joined uint64 // the lease epoch the memberships were put in
	var ticks int     // since then
	every(ctx, reclaimEvery(a.cfg.Cluster), func(ctx context.Context) {
		ticks++
		if ep := a.cluster.Epoch(); (ep != joined || ticks >= rejoinTicks) && a.rejoin(ctx) {
			joined, ticks = ep, 0
		}
		a.reclaimClusters(ctx)
	})
	<-done
}

// rejoin makes sure etcd has this host as a member of each cluster
// network it has, after each new liveness lease (a host seen dead may have
// been forgotten: ForgetDead); false: etcd did not answer, or a network
// is being created or removed: try again. It holds netOps, so that a
// network rm that has left etcd (leaveFirst) is not joined again before
// it is gone here; it only tries the lock, as create and rm wait on etcd.
func (a *Engine) rejoin(ctx context.Context) bool {
	if !a.netOps.TryLock() {
		return false
	}
	defer a.netOps.Unlock()
	local := map[string]bool{}
	for _, n := range a.networkList() {
		if _, ok := n.space.(*cluster.Space); !ok {
			continue
		}
		local[n.ID] = true
		switch err := a.cluster.Join(ctx, n.name(), n.ID); {
		case errors.Is(err, cluster.ErrUnreachable):
			return false
		case errors.Is(err, cluster.ErrNetworkGone): // marked failed; the client warned
		case err != nil:
			a.log.Warn("cluster: cannot join the network again", "network", n.name(), "err", err)
		}
	}
	return a.leaveStrays(ctx, local)
}

// leaveStrays leaves the cluster networks etcd has this host as a member
// of that it does not have (IDs in local): a create that failed, or that
// the agent died in, after its join. Otherwise the last host that has the
// network could never remove its definition; not while the state may
// have lost records. Caller holds netOps (no create is half way); false:
// etcd did not answer.
func (a *Engine) leaveStrays(ctx context.Context, local map[string]bool) bool {
	if q := a.quarantinedIDs(); a.stateReplaced || q.any() {
		// A network the state lost still has its containers, on its
		// blocks' addresses: they must not go back to the pool.
		a.log.Warn("cluster: memberships of networks this host does not have are kept: the state may not know every network", "state_replaced", a.stateReplaced, "quarantined", len(q.ids), "quarantine_unlisted", q.unknown)
		return true
	}
	mine, err := a.cluster.Memberships(ctx)
	if err != nil {
		return false
	}
	ok := true
	for name, id := range mine {
		if local[id] {
			continue
		}
		if err := cluster.CheckID(id); err != nil { // not mvlan's: no path made of it
			a.log.Warn("cluster: this host's membership of a network names an ID mvlan did not make; left alone", "network", name, "err", err)
			continue
		}
		a.log.Info("cluster: this host is a member of a network it does not have (a create cut short); leaving it", "network", name, "id", id)
		if !a.leaveCluster(ctx, name, id) {
			ok = false // tried again at the next tick
			continue
		}
		a.forgetClusterFiles(name, id)
	}
	return ok
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
// parent of the network (of the networks checkClusters keeps; not on a
// host-only link, which hears nothing).
func (a *Engine) reclaimClusters(ctx context.Context) {
	for _, n := range a.checkClusters(ctx) {
		cs := n.space.(*cluster.Space)
		n.mu.Lock()
		parent, hostOnly := n.Parent, n.ParentKind == ParentHostOnly
		n.mu.Unlock()
		prober := func(ctx context.Context, addrs []netip.Addr) ([]netip.Addr, error) {
			return probe.InUse(ctx, a.cfg.HostNetns, parent, addrs, probe.Options{})
		}
		var err error
		if !hostOnly { // made before a parent was required: it hears no answer
			_, err = cs.Reclaim(ctx, prober)
		}
		if err == nil {
			_, err = a.cluster.ForgetDead(ctx, n.name(), n.ID)
		}
		if ctx.Err() == nil {
			a.reclaimLog.note(a.log, n.name(), err)
		}
	}
}

// failureLog logs the failures of a periodic task per network once, not
// at every tick: a warning when one starts or changes, info when it ends.
// etcd not answering is left to the liveness loop's log (cluster.Client.Live).
type failureLog struct {
	mu   sync.Mutex
	last map[string]string // network -> its failure
}

func (f *failureLog) note(log *slog.Logger, network string, err error) {
	if errors.Is(err, cluster.ErrUnreachable) {
		log.Debug("cluster: reclaim", "network", network, "err", err)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.last[network]
	switch {
	case err == nil && was != "":
		delete(f.last, network)
		log.Info("cluster: reclaiming dead hosts' blocks works again", "network", network)
	case err != nil && err.Error() != was:
		if f.last == nil {
			f.last = map[string]string{}
		}
		f.last[network] = err.Error()
		log.Warn("cluster: cannot reclaim dead hosts' blocks", "network", network, "err", err)
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
