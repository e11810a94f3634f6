package engine

import "time"

// AgeDriftCounts makes e's drift counts DriftCountAge old, so that the
// next DriftCounts starts a check.
func AgeDriftCounts(e *Engine) {
	c := &e.driftCounts
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = time.Now().Add(-DriftCountAge)
}
