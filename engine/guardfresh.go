package engine

import (
	"context"
	"sync"
	"time"
)

// An endpoint attached while the tamper check runs is looked at soon
// after, freshDelay after the first of a burst, not at the next check:
// the attaches of a burst are looked at as they come, a few at a time,
// instead of hundreds at once at each check (which held up the attaches
// under way then, each look taking its turn at the kernel's locks), and a
// tamper done right after an attach is found within freshDelay.
const freshDelay = 20 * time.Millisecond

// freshQueue holds the endpoints made ready since the guard last took
// them. It holds nothing while no guard runs.
type freshQueue struct {
	mu   sync.Mutex
	on   bool
	eps  []freshEndpoint
	kick chan struct{} // one pending wake-up of the guard
}

type freshEndpoint struct {
	n  *network
	en *entry
}

// start has the queue keep what is added from now on; stop empties it
// and keeps nothing more.
func (q *freshQueue) start() chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.on, q.kick = true, make(chan struct{}, 1)
	return q.kick
}

func (q *freshQueue) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.on, q.eps = false, nil
}

// add queues en (made ready) for the guard and wakes it.
func (q *freshQueue) add(n *network, en *entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.on {
		return
	}
	q.eps = append(q.eps, freshEndpoint{n, en})
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

func (q *freshQueue) take() []freshEndpoint {
	q.mu.Lock()
	defer q.mu.Unlock()
	eps := q.eps
	q.eps = nil
	return eps
}

// guardFresh looks at the endpoints made ready since the last time, that
// the guard has not looked at yet: their namespaces get IDs (their
// notifications are heard from now on) and each is inspected once. One
// busy (its attach not quite over) is marked, for the next check.
func (a *Engine) guardFresh(ctx context.Context, g *guardState) {
	for _, f := range a.fresh.take() {
		if ctx.Err() != nil {
			return // the agent stops: nothing to look at for
		}
		e, ok := f.n.current(f.en)
		if !ok || e.State != Ready || e.Ifindex == 0 || a.hostKeyed(e) {
			continue
		}
		if ino, known := g.looked[e.ID]; known && ino == e.NetnsInode {
			continue
		}
		a.guardRegister(g, e)
		if !a.inspectEndpoint(ctx, e) {
			g.marked[e.NetnsInode] = true
		}
		g.looked[e.ID] = e.NetnsInode
	}
}
