package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/link"
)

// sweepEvery is how often the agent looks for namespaces that went away.
const sweepEvery = 500 * time.Millisecond

// watch releases endpoints whose namespace disappeared (the container
// died, `ip netns del`) until ctx is done.
func (a *Engine) watch(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.sweep(ctx)
		}
	}
}

// sweep forgets ready endpoints whose namespace is gone or replaced.
func (a *Engine) sweep(ctx context.Context) {
	eps, err := a.store.Endpoints()
	if err != nil {
		a.log.Warn("sweep: read endpoints", "err", err)
		return
	}
	for _, e := range eps {
		if e.State == api.EndpointReady && !netnsAlive(e) {
			a.releaseVanished(ctx, e.ID)
		}
	}
}

// releaseVanished releases endpoint id if, looked at again under the lock,
// it is still ready and its namespace still gone: a concurrent rm may have
// released it (and its address been handed out again) since the sweep read.
func (a *Engine) releaseVanished(ctx context.Context, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, err := a.store.Endpoint(id)
	if err != nil || e.State != api.EndpointReady || netnsAlive(e) {
		return
	}
	if err := a.undoEndpoint(ctx, a.nets[e.NetworkID], e); err != nil {
		a.log.Warn("release endpoint of a vanished namespace", "name", e.Name, "err", err)
		return
	}
	a.log.Info("released endpoint: its namespace is gone", "name", e.Name, "netns", e.Netns)
}

func netnsAlive(e api.Endpoint) bool {
	ino, err := link.CheckNetns(e.Netns)
	return err == nil && ino == e.NetnsInode
}

// reconcileEndpoints, on start: undoes endpoints caught half made or half
// removed, forgets those whose namespace is gone, and re-attaches the link
// of those whose namespace lost it. Caller holds mu.
func (a *Engine) reconcileEndpoints(ctx context.Context) error {
	eps, err := a.store.Endpoints()
	if err != nil {
		return fmt.Errorf("read endpoints: %w", err)
	}
	for _, e := range eps {
		n := a.nets[e.NetworkID]
		var why string
		switch {
		case e.State != api.EndpointReady:
			why = "caught " + e.State + " by a restart"
		case !netnsAlive(e):
			why = "its namespace is gone"
		case n == nil:
			why = "its network is gone"
		default:
			err := a.ensureLink(ctx, n, e)
			if err == nil {
				err = a.attachEndpointDP(ctx, n, e)
			}
			if err != nil {
				// Keep it: the namespace and its address are the user's;
				// doctor reports the drift, a later start may fix it.
				a.log.Warn("endpoint not attached", "name", e.Name, "network", n.Name, "err", err)
			}
			continue
		}
		if err := a.undoEndpoint(ctx, n, e); err != nil {
			a.log.Warn("cannot release endpoint", "name", e.Name, "err", err)
			continue
		}
		a.log.Info("released endpoint", "name", e.Name, "reason", why)
	}
	eps, err = a.store.Endpoints()
	if err != nil {
		return fmt.Errorf("read endpoints: %w", err)
	}
	return a.pruneEndpointTable(eps)
}

// ensureLink re-creates e's link if its namespace lost it.
func (a *Engine) ensureLink(ctx context.Context, n *network, e api.Endpoint) error {
	links, err := link.EndpointLinks(e.Netns)
	if err != nil {
		return err
	}
	alias := a.alias("ep", e.ID)
	for _, l := range links {
		if l.Alias == alias {
			return nil
		}
	}
	if n == nil || !n.ok() {
		return errors.New("its network cannot take endpoints")
	}
	if err := a.host.AttachEndpoint(ctx, a.endpointSpec(n, e)); err != nil {
		return fmt.Errorf("re-attach: %w", err)
	}
	a.log.Info("re-attached endpoint", "name", e.Name, "netns", e.Netns)
	return nil
}

// attachEndpointDP (re)attaches a ready endpoint's programs at start and
// records its keys if they changed (a re-created link has a new ifindex).
func (a *Engine) attachEndpointDP(ctx context.Context, n *network, e api.Endpoint) error {
	before := e
	if err := a.attachEndpoint(ctx, n, &e); err != nil {
		return err
	}
	if e.Ifindex == before.Ifindex && e.NetnsCookie == before.NetnsCookie {
		return nil
	}
	if before.Ifindex != 0 {
		_ = a.dp.DeleteEndpoint(before.NetnsCookie, before.Ifindex)
	}
	return a.store.UpdateEndpoint(e)
}
