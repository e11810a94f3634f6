package engine

// One durable commit per attach: the "creating" record is the one the
// crash order needs (the attach answers once it is on disk, and what the
// kernel side made meanwhile is nameless or has an intent, so a crash
// leaves nothing unaccounted for). The "ready" record that follows
// is not needed for safety: an endpoint found "creating" on start whose
// kernel side is whole is adopted (completeIn), which is what a crash
// before "ready" reached the disk comes to. So the attach answers once the
// endpoint is ready in the index, and its "ready" record goes to disk with
// the next commit (the next attach's "creating", a removal's "removing":
// before that commit's own change, so a removal's record wins) or on its
// own soon after (store.UpdateEndpointLater): no sync of its own while
// attaches come one after another. DHCP endpoints store theirs first: the
// lease must be on disk before the address is used. Check flushes it
// first: an answered attach is not drift.

// storeReadyLater queues e's "ready" record. Caller holds e's busy lock.
func (a *Engine) storeReadyLater(e endpoint) { a.store.UpdateEndpointLater(e.api()) }
