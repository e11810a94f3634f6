package engine

// The tamper check's bookkeeping: what was found, counted and repaired,
// the retries of repairs that failed, and how often it is logged.

import (
	"strings"
	"sync"
	"time"

	"github.com/mvlan/mvlan/loader"
)

// tamperCounts are the engine's tamper and repair counts by reason, since
// the agent started. A tamper that stays (one mvlan cannot repair) counts
// once, when it is first seen. Check lists the last tamper of each
// endpoint still there, repaired or not: the container did it and may
// again; once it is gone, so is its finding (and the drift it counts).
type tamperCounts struct {
	mu                 sync.Mutex
	tampered, repaired map[string]uint64
	recent             map[string]tamperFinding // endpoint ID -> its last tamper, for Check
	active             map[string]bool          // endpoint/what of the last check
	// unrepaired are the active ones whose last repair failed or did not
	// hold (the container did it again before the second look): tried
	// again, not only when first seen, at growing intervals.
	unrepaired map[string]retryState
	// warned: when each endpoint's tampers were last logged as warnings
	// (warnDue); a container that tampers again and again is logged once
	// in tamperWarnEvery, the rest at debug (the counts count them all).
	warned map[string]time.Time
	clock  func() time.Time // time.Now when nil (tests set it)
}

// tamperWarnEvery is how often an endpoint's tampers are logged as
// warnings at most.
const tamperWarnEvery = time.Minute

// warnDue reports whether a tamper of endpoint is to be logged as a
// warning now, and if so notes it.
func (c *tamperCounts) warnDue(endpoint string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warned == nil {
		c.warned = map[string]time.Time{}
	}
	if last, ok := c.warned[endpoint]; ok && c.now().Sub(last) < tamperWarnEvery {
		return false
	}
	c.warned[endpoint] = c.now()
	return true
}

// retryState is an unrepaired tamper's schedule: the tries that failed,
// and when the next is due.
type retryState struct {
	tries int
	due   time.Time
}

// A repair that failed is tried again after retryFirst, then twice as
// long each time, at most retryMax. Until a try is due within retrySoon,
// the guard looks at the endpoint at each check; after that, at its turn
// in the rolling pass or on its namespace's events.
const (
	retryFirst = DefaultTamperCheck
	retryMax   = 30 * time.Second
	retrySoon  = 2 * time.Second
)

func (c *tamperCounts) now() time.Time {
	if c.clock != nil {
		return c.clock()
	}
	return time.Now()
}

// tamperFinding is an endpoint's last tamper, as Check lists it.
type tamperFinding struct{ name, what string }

// seen records the tampers found on endpoint (its ID: a later one of the
// same name is another) named name in one check (what -> reason) and
// returns those that are new; due if one found was left unrepaired by its
// last try and its next is due, soon if one's is due within retrySoon. An
// active tamper not found stays when blind(what): the check could not look
// there (its hooks or links unknown), so it is not counted again, nor its
// retries started over, when seen next.
func (c *tamperCounts) seen(endpoint, name string, found map[string]string, blind func(what string) bool) (fresh []string, due, soon bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active == nil {
		c.tampered, c.repaired = map[string]uint64{}, map[string]uint64{}
		c.recent, c.active, c.unrepaired = map[string]tamperFinding{}, map[string]bool{}, map[string]retryState{}
	}
	for k := range c.active {
		what, ok := strings.CutPrefix(k, endpoint+"/")
		if ok && found[what] == "" && !blind(what) {
			delete(c.active, k)
			delete(c.unrepaired, k)
		}
	}
	for what, reason := range found {
		k := endpoint + "/" + what
		if !c.active[k] {
			c.active[k] = true
			c.tampered[reason]++
			c.recent[endpoint] = tamperFinding{name, what}
			fresh = append(fresh, what)
		}
		if r, ok := c.unrepaired[k]; ok {
			due = due || !c.now().Before(r.due)
			soon = soon || r.due.Sub(c.now()) <= retrySoon
		}
	}
	return fresh, due, soon
}

// failed records that the repair of what on endpoint failed or did not
// hold, and schedules the next try; first if it is the first that failed.
func (c *tamperCounts) failed(endpoint, what string) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := endpoint + "/" + what
	if !c.active[k] {
		return true
	}
	r := c.unrepaired[k]
	r.due = c.now().Add(min(retryFirst<<min(r.tries, 8), retryMax))
	r.tries++
	c.unrepaired[k] = r
	return r.tries == 1
}

// redone records that the repair of what on endpoint was undone at once
// (repairHooks): it is tried again at the next check, without a backoff,
// and stays one tamper, not repaired.
func (c *tamperCounts) redone(endpoint, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := endpoint + "/" + what
	if c.active[k] {
		c.unrepaired[k] = retryState{tries: c.unrepaired[k].tries, due: c.now()}
	}
}

// fixed counts a repair of what on endpoint that held: what is no
// longer active, so the same tamper done again is new and repaired
// again, even if no check looked at the endpoint in between (a repair
// may send no notification, so the next look may be the rolling pass's).
func (c *tamperCounts) fixed(endpoint, what, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.repaired[reason]++
	delete(c.active, endpoint+"/"+what)
	delete(c.unrepaired, endpoint+"/"+what)
}

// drop forgets the tampers of endpoint (its ID), which is gone: active
// ones and its finding.
func (c *tamperCounts) drop(endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.recent, endpoint)
	delete(c.warned, endpoint)
	for k := range c.active {
		if strings.HasPrefix(k, endpoint+"/") {
			delete(c.active, k)
			delete(c.unrepaired, k)
		}
	}
}

// snapshot returns copies of the counts, every reason listed.
func (c *tamperCounts) snapshot() (tampered, repaired map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tampered, repaired = map[string]uint64{}, map[string]uint64{}
	reasons := []string{TamperNestedLink, TamperMACChanged, TamperModeChanged}
	for _, t := range loader.Tampers {
		reasons = append(reasons, string(t))
	}
	for _, r := range reasons {
		tampered[r], repaired[r] = c.tampered[r], c.repaired[r]
	}
	return tampered, repaired
}

// findings are the last tampers of the endpoints still there, by their
// names.
func (c *tamperCounts) findings() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.recent))
	for _, f := range c.recent {
		out[f.name] = f.what
	}
	return out
}
