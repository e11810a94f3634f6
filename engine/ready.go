package engine

import (
	"context"
	"sync"
)

// One durable commit per attach: the "creating" record is the one the
// crash order needs (it is on disk before any kernel object is made, so a
// crash leaves nothing unaccounted for). The "ready" record that follows
// is not needed for safety: an endpoint found "creating" on start whose
// kernel side is whole is adopted (completeIn), which is what a crash
// before "ready" reached the disk comes to. So the attach answers once the
// endpoint is ready in the index, and its "ready" record is stored just
// after, off the request path, in the store's group commit with whatever
// else is committing then. DHCP endpoints store theirs first: the lease
// must be on disk before the address is used.

// storeReadyLater stores en's "ready" record once its creator lets go of
// it, unless it is no longer ready by then (a removal came first and
// stored "removing": that record stays). Close waits for it.
func (a *Engine) storeReadyLater(n *network, en *entry) {
	done := a.later.add()
	go func() {
		defer done()
		en.busy.Lock()
		defer en.busy.Unlock()
		e, ok := n.current(en)
		if !ok || e.State != Ready {
			return
		}
		if err := a.store.UpdateEndpoint(e.api()); err != nil {
			a.log.Warn("endpoint is ready but not stored as ready; the next start adopts it", "name", e.Name, "err", err)
		}
	}()
}

// pending counts work under way in the background; wait waits for what
// is under way when it is called (not for what starts meanwhile).
type pending struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; nil while n is 0
}

func (p *pending) add() (done func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		p.idle = make(chan struct{})
	}
	p.n++
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.n--; p.n == 0 {
			close(p.idle)
		}
	}
}

func (p *pending) wait(ctx context.Context) {
	p.mu.Lock()
	idle := p.idle
	if p.n == 0 {
		idle = nil
	}
	p.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
		}
	}
}
