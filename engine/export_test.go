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

// LinkEvent does what a link event of the host's does at once (before
// the parents' refresh it may start).
func LinkEvent(e *Engine, ev link.LinkEvent) { e.unpinGone(ev) }
