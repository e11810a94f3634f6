package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"
)

// DriftKind is which part of Check found a disagreement.
type DriftKind string

// The kinds of drift Check reports.
const (
	DriftEndpoint   DriftKind = "endpoint"   // a stored endpoint's network, state, namespace or link
	DriftIPAM       DriftKind = "ipam"       // held addresses against the endpoints' addresses
	DriftIndex      DriftKind = "index"      // the in-memory index against the store
	DriftLink       DriftKind = "link"       // host links: parents, host shims, leftovers
	DriftQuarantine DriftKind = "quarantine" // state records set aside as unreadable
	DriftTamper     DriftKind = "tamper"     // endpoints tampered with since the agent started
	DriftCluster    DriftKind = "cluster"    // cluster networks etcd no longer defines as they are
)

// DriftKinds are every DriftKind, in a fixed order.
var DriftKinds = []DriftKind{DriftEndpoint, DriftIPAM, DriftIndex, DriftLink, DriftQuarantine, DriftTamper, DriftCluster}

// DriftCountAge is how old the counts DriftCounts returns may grow before
// a call starts a new check. A check lists the links of every endpoint's
// namespace, so a call waits for one only while there are no counts.
const DriftCountAge = 10 * time.Second

// driftCounts caches the last Check's counts for DriftCounts; a check
// runs in the background, one at a time.
type driftCounts struct {
	mu       sync.Mutex
	at       time.Time // when the check that counted began
	counts   map[DriftKind]int
	err      error         // of the last check, which left no counts
	checking chan struct{} // closed when the check in flight ends; nil: none
	bg       keepers       // the check in flight, stopped by Engine.Close
}

// DriftCounts is how many findings Check reports, by kind (every kind,
// zeros included), from the last check. When the counts are
// DriftCountAge old it starts a check in the background (through
// Config.Background) and answers with them; only while there are none
// (before the first check, after a failed one) does it wait for the
// check.
func (a *Engine) DriftCounts(ctx context.Context) (map[DriftKind]int, error) {
	c := &a.driftCounts
	c.mu.Lock()
	if c.checking == nil && (c.counts == nil || time.Since(c.at) >= DriftCountAge) {
		done := make(chan struct{})
		c.checking = done
		if !c.bg.spawn(func(ctx context.Context) {
			defer close(done)
			a.background(func() { a.countDrift(ctx) })
		}) {
			c.err = errors.New("the agent is stopping")
			close(done)
		}
	}
	counts, wait := c.counts, c.checking
	c.mu.Unlock()
	if counts != nil {
		return maps.Clone(counts), nil
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		return nil, fmt.Errorf("drift check: %w", c.err)
	}
	return maps.Clone(c.counts), nil
}

// countDrift runs a check and keeps its counts; a failed check drops the
// last ones (they would be reported as current), and the next
// DriftCounts waits for a new check.
func (a *Engine) countDrift(ctx context.Context) {
	c := &a.driftCounts
	start := time.Now()
	counts, err := a.checkCounts(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checking = nil
	c.counts, c.at, c.err = counts, start, err
	if err != nil && ctx.Err() == nil {
		a.log.Warn("drift check for the metrics failed", "err", err)
	}
}

func (a *Engine) checkCounts(ctx context.Context) (map[DriftKind]int, error) {
	found, err := a.settledDrift(ctx) // as Check
	if err != nil {
		return nil, err
	}
	counts := make(map[DriftKind]int, len(DriftKinds))
	for _, k := range DriftKinds {
		counts[k] = len(found[k])
	}
	return counts, nil
}

// background runs fn, work no request waits for, through
// Config.Background (at a lower priority in the agent).
func (a *Engine) background(fn func()) {
	if a.cfg.Background != nil {
		a.cfg.Background(fn)
		return
	}
	fn()
}
