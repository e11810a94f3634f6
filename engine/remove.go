package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

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
	wg      sync.WaitGroup
}

type removal struct {
	id   string // the endpoint's
	done chan struct{}
}

// start records the removal of en (endpoint id) as pending.
func (r *removals) start(en *entry, id string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[*entry]removal{}
	}
	done := make(chan struct{})
	r.pending[en] = removal{id: id, done: done}
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
	delete(r.pending, en)
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

// removeEndpoint marks en removing and makes it unreachable, then finishes
// the removal in the background (see above). Where the link cannot be
// silenced (a namespace of the operator's, or not the endpoint's any more) it
// removes everything before answering. It waits for whatever en's lock is held for (its
// creation, say); one removed meanwhile is not an error.
func (a *Engine) removeEndpoint(ctx context.Context, n *network, en *entry) error {
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
	a.releaseLease(ctx, n, e)
	via, closeNetns, err := a.silence(ctx, e)
	if err != nil {
		defer en.busy.Unlock()
		a.log.Debug("endpoint not silenced, removing it at once", "name", e.Name, "err", err)
		return a.finishRemove(ctx, n, en, e, e)
	}
	done := a.removals.start(en, e.ID)
	go func() {
		defer a.removals.finish(en, done)
		defer en.busy.Unlock()
		defer closeNetns()
		crashpoint.Hit("endpoint-rm:after-down")
		if err := a.finishRemove(context.WithoutCancel(ctx), n, en, e, via); err != nil {
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
// silenced: their removal finishes before it answers.
func (a *Engine) silence(ctx context.Context, e endpoint) (via endpoint, closeNetns func(), err error) {
	closeNetns = func() {}
	if !e.OwnsNetns {
		// The operator's namespace: when disconnect answers, the link
		// is gone from it, as with Docker.
		return e, closeNetns, errors.New("the namespace is not one mvlan made")
	}
	if !a.isOurNetns(e) {
		return e, closeNetns, errors.New("the namespace is not the endpoint's any more")
	}
	name, err := a.endpointLink(e)
	if err != nil {
		return e, closeNetns, err
	}
	if name == "" {
		return e, closeNetns, errors.New("no link with the endpoint's mark")
	}
	if err := a.host.SilenceEndpoint(ctx, e.Netns, name); err != nil {
		return e, closeNetns, err
	}
	f, err := os.Open(e.Netns)
	if err != nil {
		return e, closeNetns, err
	}
	if err := a.ns.Delete(e.Name); err != nil {
		return e, closeNetns, errors.Join(err, f.Close())
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
