package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mvlan/mvlan/internal/crashpoint"
)

// A removal answers once the endpoint is unreachable and recorded as
// removing: its link has no address left (link.Host.SilenceEndpoint: no
// RCU wait, unlike setting a macvlan down) and the state says "removing",
// durably. The
// rest (the datapath entry, deleting the link, which waits for an RCU
// barrier, and the namespace, then forgetting the record) finishes in the
// background while the endpoint's lock is held, so nothing else touches it
// meanwhile; a namespace mvlan made loses its name before the answer (it
// stays open until its link is deleted), and the endpoint leaves mvlan ps. Its addresses stay held until its link is gone: only then is
// it taken out of the index and the space. A crash in between leaves a
// "removing" endpoint, which the next start finishes (reconcileEndpoint).

// removals are the endpoint removals finishing in the background.
type removals struct {
	mu      sync.Mutex
	pending map[*entry]removal
	nets    map[string]*netRemovals  // by network ID, while any is pending
	netns   map[string]chan struct{} // by the /run/netns path a removal owns
	wg      sync.WaitGroup
}

type removal struct {
	id, netID string // the endpoint's and its network's
	netns     string // the /run/netns path it owns, or ""
	done      chan struct{}
}

// netRemovals counts a network's pending removals; idle is closed when
// the count drops to zero.
type netRemovals struct {
	count int
	idle  chan struct{}
}

// allocWait bounds how long a dynamic allocation waits for its network's
// removals (waitNetwork); past it, it takes the lowest address free then.
const allocWait = 10 * time.Second

// start records the removal of en (endpoint id, on network netID, owning
// the namespace path netns if not "") as pending.
func (r *removals) start(en *entry, id, netID, netns string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[*entry]removal{}
		r.nets = map[string]*netRemovals{}
		r.netns = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	r.pending[en] = removal{id: id, netID: netID, netns: netns, done: done}
	if netns != "" {
		r.netns[netns] = done
	}
	nr := r.nets[netID]
	if nr == nil {
		nr = &netRemovals{idle: make(chan struct{})}
		r.nets[netID] = nr
	}
	nr.count++
	r.wg.Add(1)
	return done
}

// ids are the IDs of the endpoints being removed.
func (r *removals) ids() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.pending))
	for _, p := range r.pending {
		out[p.id] = true
	}
	return out
}

func (r *removals) finish(en *entry, done chan struct{}) {
	r.mu.Lock()
	p := r.pending[en]
	netID := p.netID
	delete(r.pending, en)
	if r.netns[p.netns] == done {
		delete(r.netns, p.netns)
	}
	if nr := r.nets[netID]; nr != nil {
		if nr.count--; nr.count == 0 {
			delete(r.nets, netID)
			close(nr.idle)
		}
	}
	r.mu.Unlock()
	close(done)
	r.wg.Done()
}

// wait blocks until every removal pending now has finished, or ctx is
// done; it reports whether there was any to wait for.
func (r *removals) wait(ctx context.Context) bool {
	r.mu.Lock()
	chans := make([]chan struct{}, 0, len(r.pending))
	for _, p := range r.pending {
		chans = append(chans, p.done)
	}
	r.mu.Unlock()
	for _, c := range chans {
		select {
		case <-c:
		case <-ctx.Done():
			return true
		}
	}
	return len(chans) > 0
}

// waitNetwork blocks until network netID has no removal pending (those
// started meanwhile included), ctx is done or allocWait has passed, so
// that a dynamic allocation right after an rm gets the address the rm
// frees (the lowest free one, as with Docker) rather than the next. O(1);
// it holds no lock while it waits.
func (r *removals) waitNetwork(ctx context.Context, netID string) {
	r.mu.Lock()
	nr := r.nets[netID]
	r.mu.Unlock()
	if nr != nil {
		waitBounded(ctx, nr.idle)
	}
}

// waitNetns blocks until no pending removal owns the namespace path
// netns (a container name freed by rm -f, asked for again by a run on any
// network), ctx is done or allocWait has passed. O(1); it holds no lock
// while it waits.
func (r *removals) waitNetns(ctx context.Context, netns string) {
	r.mu.Lock()
	done := r.netns[netns]
	r.mu.Unlock()
	if done != nil {
		waitBounded(ctx, done)
	}
}

// waitBounded blocks until c is closed, ctx is done or allocWait has
// passed.
func waitBounded(ctx context.Context, c <-chan struct{}) {
	t := time.NewTimer(allocWait)
	defer t.Stop()
	select {
	case <-c:
	case <-ctx.Done():
	case <-t.C:
	}
}

// removeEndpoint marks en removing and makes it unreachable, then finishes
// the removal in the background (see above). Where the link cannot be
// silenced (a namespace of the operator's, or not the endpoint's any more) it
// removes everything before answering. It waits for whatever en's lock is held for (its
// creation, say); one removed meanwhile is not an error.
func (a *Engine) removeEndpoint(ctx context.Context, n *network, en *entry, foreignInBackground bool) error {
	en.busy.Lock()
	e, ok := n.current(en)
	if !ok {
		en.busy.Unlock()
		return nil
	}
	if err := a.markRemoving(n, en, &e); err != nil {
		en.busy.Unlock()
		return fmt.Errorf("remove %s: %w", e.Name, err)
	}
	crashpoint.Hit("endpoint-rm:after-state")
	// Recorded as removing: the rest is done whatever becomes of the
	// request (a client gone, a CNI DEL killed by its runtime), not left
	// half done for the next start.
	ctx = context.WithoutCancel(ctx)
	if a.releaseLease(ctx, n, e) {
		a.givenBack(n, en, &e)
	}
	a.releaseLease6(ctx, n, e)
	crashpoint.Hit("endpoint-rm:after-release")
	via, closeNetns, err := a.silence(ctx, e, foreignInBackground)
	if err != nil {
		defer en.busy.Unlock()
		a.log.Debug("endpoint not silenced, removing it at once", "name", e.Name, "err", err)
		crashpoint.Hit("endpoint-rm:not-silenced")
		return a.finishRemove(ctx, n, en, e, e)
	}
	done := a.removals.start(en, e.ID, n.ID, e.Netns)
	go func() {
		defer a.removals.finish(en, done)
		defer en.busy.Unlock()
		defer closeNetns()
		crashpoint.Hit("endpoint-rm:after-down")
		if err := a.finishRemove(ctx, n, en, e, via); err != nil {
			a.log.Warn("endpoint is silenced but not removed; the next agent start finishes it", "name", e.Name, "err", err)
		}
	}()
	return nil
}

// silence takes the addresses off the link (found by our alias) of an
// endpoint in a namespace mvlan made, and the namespace's name away at
// once, so that the name is free when the removal answers; the namespace
// stays open until closeNetns, and via is e as the rest of the removal reaches it (through
// /proc/self/fd). Endpoints in the operator's namespaces (connect) are not
// silenced, their removal finishes before it answers, unless foreign (a
// CNI DEL: the runtime deletes the namespace next).
func (a *Engine) silence(ctx context.Context, e endpoint, foreign bool) (via endpoint, closeNetns func(), err error) {
	closeNetns = func() {}
	if !e.OwnsNetns && !foreign {
		// The operator's namespace: when disconnect answers, the link
		// is gone from it, as with Docker.
		return e, closeNetns, errors.New("the namespace is not one mvlan made")
	}
	if !a.isOurNetns(e) {
		return e, closeNetns, errors.New("the namespace is not the endpoint's any more")
	}
	// isOurNetns found e's namespace at its path: a stored ifindex is in it.
	idx := 0
	if e.NetnsInode != 0 && !isHandoff(e) {
		idx = e.Ifindex
	}
	if err := a.host.SilenceEndpoint(ctx, e.Netns, idx, a.alias("ep", e.ID)); err != nil {
		return e, closeNetns, err
	}
	f, err := os.Open(e.Netns)
	if err != nil {
		return e, closeNetns, err
	}
	if e.OwnsNetns {
		if err := a.ns.Delete(e.Name); err != nil {
			return e, closeNetns, errors.Join(err, f.Close())
		}
	}
	via = e
	via.Netns = fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	return via, func() { f.Close() }, nil
}

// finishRemove tears e down, reaching it as via, and forgets it. Caller
// holds en.busy.
func (a *Engine) finishRemove(ctx context.Context, n *network, en *entry, e, via endpoint) error {
	if err := a.undoEndpoint(ctx, n, en, via); err != nil {
		return fmt.Errorf("remove %s: %w", e.Name, err)
	}
	a.log.Info("endpoint removed", "name", e.Name, "netns", e.Netns)
	return nil
}
