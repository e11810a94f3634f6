package agent

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/link"
)

// isHandoff reports whether e is a Docker endpoint whose link Docker has
// not been seen to move yet: stored at Join without an interface name.
// (Endpoints of mvlan run and connect always have one.)
func isHandoff(e api.Endpoint) bool {
	return e.State == api.EndpointCreating && !e.OwnsNetns && e.IfName == ""
}

// watchHandoff finishes endpoint id once Docker has moved its link into the
// sandbox, for up to handoffWait. Caller holds mu.
func (a *Agent) watchHandoff(id string) {
	a.stopWatch(id)
	ctx, cancel := context.WithTimeout(a.docker.ctx, handoffWait)
	w := &handoffWatch{cancel: cancel}
	a.docker.watches[id] = w
	go func() {
		defer cancel()
		a.awaitHandoff(ctx, id)
		a.mu.Lock()
		if a.docker.watches[id] == w {
			delete(a.docker.watches, id)
		}
		a.mu.Unlock()
	}()
}

// stopWatch ends the watch of endpoint id, if any. Caller holds mu.
func (a *Agent) stopWatch(id string) {
	if w := a.docker.watches[id]; w != nil {
		w.cancel()
		delete(a.docker.watches, id)
	}
}

func (a *Agent) awaitHandoff(ctx context.Context, id string) {
	wait := 10 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				a.log.Warn("Docker did not move the endpoint's link into its sandbox in time; the next agent start finishes it", "endpoint", shortID(id), "waited", handoffWait)
			}
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
		if a.finishHandoff(ctx, id) {
			return
		}
	}
}

// finishHandoff makes endpoint id ready if its link is up in its sandbox:
// records the link's name and the namespace, attaches the datapath. It
// reports whether there is nothing left to wait for.
func (a *Agent) finishHandoff(ctx context.Context, id string) bool {
	e, err := a.store.Endpoint(id)
	if err != nil || !isHandoff(e) {
		return true
	}
	if _, _, ok := a.handoffLink(e); !ok {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, err = a.store.Endpoint(id); err != nil || !isHandoff(e) || ctx.Err() != nil {
		return true // Leave or DeleteEndpoint came first
	}
	l, ino, ok := a.handoffLink(e)
	if !ok {
		return false
	}
	n := a.nets[e.NetworkID]
	if n == nil {
		return true
	}
	e.IfName, e.NetnsInode, e.State = l.Name, ino, api.EndpointReady
	if err := a.attachEndpoint(ctx, n, &e); err != nil {
		a.log.Warn("Docker endpoint ready without its datapath programs; the next agent start attaches them", "name", e.Name, "err", err)
	}
	if err := a.store.UpdateEndpoint(e); err != nil {
		a.log.Warn("Docker endpoint: store it ready", "name", e.Name, "err", err)
		return true
	}
	a.log.Info("Docker endpoint ready", "name", e.Name, "network", n.Name, "ifname", e.IfName, "netns", e.Netns)
	go a.nameDockerEndpoint(a.docker.ctx, id)
	return true
}

// handoffLink finds e's link in its sandbox, once Docker has named it and
// brought it up there (its last step), and the sandbox's inode.
func (a *Agent) handoffLink(e api.Endpoint) (link.Info, uint64, bool) {
	ino, err := link.CheckNetns(e.Netns)
	if err != nil || ino == a.hostIno {
		return link.Info{}, 0, false // not bound to the container's namespace yet
	}
	links, err := link.EndpointLinks(e.Netns)
	if err != nil {
		return link.Info{}, 0, false
	}
	alias := a.alias("ep", e.ID)
	tmp := link.TempPrefixFor(a.store.AgentID())
	for _, l := range links {
		if l.Alias == alias && l.Up && !strings.HasPrefix(l.Name, tmp) {
			return l, ino, true
		}
	}
	return link.Info{}, 0, false
}

// finishHandoffs, on start before Reconcile (which undoes "creating"
// endpoints), marks ready the Docker endpoints whose link Docker moved into
// the sandbox while no watch saw it; Reconcile then attaches them.
func (a *Agent) finishHandoffs() {
	eps, err := a.store.Endpoints()
	if err != nil {
		return // Reconcile reports it
	}
	for _, e := range eps {
		if !isHandoff(e) {
			continue
		}
		l, ino, ok := a.handoffLink(e)
		if !ok {
			continue
		}
		e.IfName, e.NetnsInode, e.State = l.Name, ino, api.EndpointReady
		if err := a.store.UpdateEndpoint(e); err != nil {
			a.log.Warn("Docker endpoint: store it ready", "name", e.Name, "err", err)
			continue
		}
		a.log.Info("Docker endpoint finished on start", "name", e.Name, "ifname", e.IfName, "netns", e.Netns)
	}
}
