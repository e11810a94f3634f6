package engine

import (
	"context"
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
)

// DriftKinds are every DriftKind, in a fixed order.
var DriftKinds = []DriftKind{DriftEndpoint, DriftIPAM, DriftIndex, DriftLink, DriftQuarantine, DriftTamper}

// DriftCountAge is how old the counts DriftCounts returns may be: a
// scrape runs Check at most this often (it lists the links of every
// endpoint's namespace).
const DriftCountAge = 10 * time.Second

// driftCounts caches the last Check's counts for DriftCounts.
type driftCounts struct {
	mu     sync.Mutex
	at     time.Time
	counts map[DriftKind]int
}

// DriftCounts is how many findings Check reports, by kind (every kind,
// zeros included), from a Check at most DriftCountAge old.
func (a *Engine) DriftCounts(ctx context.Context) (map[DriftKind]int, error) {
	c := &a.driftCounts
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts != nil && time.Since(c.at) < DriftCountAge {
		return maps.Clone(c.counts), nil
	}
	a.removals.wait(ctx) // as Check
	if err := a.store.Flush(); err != nil {
		return nil, err
	}
	found, err := a.drift(ctx)
	if err != nil {
		return nil, err
	}
	c.counts = make(map[DriftKind]int, len(DriftKinds))
	for _, k := range DriftKinds {
		c.counts[k] = len(found[k])
	}
	c.at = time.Now()
	return maps.Clone(c.counts), nil
}
