package engine

import (
	"context"
	"time"

	"github.com/mvlan/mvlan/link"
)

// AgeDriftCounts makes e's drift counts DriftCountAge old, so that the
// next DriftCounts starts a check.
func AgeDriftCounts(e *Engine) {
	c := &e.driftCounts
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = time.Now().Add(-DriftCountAge)
}

// CheckClusters runs the cluster loop's check that etcd still defines
// each cluster network of e as it is.
func CheckClusters(ctx context.Context, e *Engine) { e.checkClusters(ctx) }

// RefreshParents runs what a link event of a network's parent starts.
func RefreshParents(ctx context.Context, e *Engine) { e.refreshParents(ctx) }

// LinkEvent does what a link event of the host's does at once, and
// reports whether it starts the parents' refresh.
func LinkEvent(e *Engine, ev link.LinkEvent) bool { return e.onLinkEvent(ev) }

// HostListing is a listing of the host's links (ListHost).
type HostListing = hostListing

// ListHost lists the host's links, as the parents' refresh does first.
func ListHost(e *Engine) (HostListing, error) { return e.listHost() }

// RefreshParentsFrom runs the parents' refresh with links listed before.
func RefreshParentsFrom(ctx context.Context, e *Engine, hl HostListing) {
	e.netOps.Lock()
	defer e.netOps.Unlock()
	e.refreshParentsFrom(ctx, hl)
}

// ClusterEpoch is the engine's cluster liveness lease epoch.
func (a *Engine) ClusterEpoch() uint64 { return a.cluster.Epoch() }

func init() { driftSettle = 10 * time.Millisecond } // the fake kernel's operations are instant
