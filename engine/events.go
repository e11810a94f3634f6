package engine

import (
	"bytes"
	"context"
	"time"

	"github.com/mvlan/mvlan/link"
)

// settleEvents is how long link events are gathered before parents are
// checked.
const settleEvents = 100 * time.Millisecond

// resubscribeMax bounds the wait before subscribing to link events again
// after the subscription failed.
const resubscribeMax = 5 * time.Second

// watchLinks re-checks the networks' parents when one of their links
// changes in the host namespace: a missing parent is reported (and
// re-created if mvlan owns it), a parent that came back gets its programs
// again. A subscription that fails (the kernel dropped events: ENOBUFS)
// is made again, and the parents checked, since events may be lost. It
// runs until ctx is done.
func (a *Engine) watchLinks(ctx context.Context) {
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	refresher := make(chan struct{})
	defer func() { <-refresher }() // a refresh under way ends before the engine may close
	go func() {
		defer close(refresher)
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			}
			time.Sleep(settleEvents)
			select {
			case <-kick:
			default:
			}
			a.refreshParents(ctx)
		}
	}()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, resubscribeMax) {
		err := a.host.WatchLinks(ctx, func(ev link.LinkEvent) {
			if a.onLinkEvent(ev) {
				poke()
			}
		})
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("link events lost: subscribing again, parents checked", "err", err, "in", wait)
		poke()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// onLinkEvent does what a link event of the host's needs done at once
// (gatewayLinkEvent), and reports whether it needs the parents checked:
// so does the subscription's start, since what changed between the
// start's listing and it sent no event that reached the engine.
func (a *Engine) onLinkEvent(ev link.LinkEvent) bool {
	if ev.Subscribed {
		return true
	}
	gw := a.gatewayLinkEvent(ev)
	return a.isParentLink(ev) || gw
}

// isParentLink reports whether ev concerns a network's parent, trunk or
// host shim.
func (a *Engine) isParentLink(ev link.LinkEvent) bool {
	for _, n := range a.networkList() {
		if n.concerns(ev, a.alias("net", n.ID)) {
			return true
		}
	}
	return false
}

// concerns reports whether ev may change what a refresh finds of n. An
// event of a healthy network's parent that leaves its name, index and MAC
// (and, for a parent mvlan made, its alias: own) as they were does not:
// every endpoint's link made or deleted on the parent sends one (its MAC
// joins or leaves the parent's filter), and a refresh for each would list
// the host's links again and again while endpoints come and go.
func (n *network) concerns(ev link.LinkEvent, own string) bool {
	if ev.Name == shimName(n) {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p, t := n.parentIndex, n.trunkIndex
	switch {
	case ev.Index == t && t != 0:
		// Gone or renamed; not each endpoint made or deleted on another
		// network's parent on the same link.
		return ev.Deleted || ev.Name != n.trunkName || n.status.status != StatusOK
	case n.status.status != StatusOK && !ev.Deleted && ev.Name == n.lowerName():
		// The link under a sub-interface mvlan makes came (back): a NIC
		// plugged again, or named late at boot, at an index no one knew.
		return true
	case ev.Name != n.Parent && ev.Index != p && ev.Index != n.selfIndex:
		return false
	}
	same := !ev.Deleted && ev.Name == n.parentName && ev.Index == p && bytes.Equal(ev.MAC, n.parentMAC) &&
		(!n.ParentKind.owned() || ev.Alias == own)
	return !same || n.status.status != StatusOK
}

// lowerName is the name of the link a sub-interface mvlan makes as n's
// parent sits on ("" for any other parent). Caller holds n.mu.
func (n *network) lowerName() string {
	if n.ParentKind != ParentVLAN {
		return ""
	}
	p, err := link.ParseParent(n.Parent)
	if err != nil {
		return ""
	}
	return p.Lower
}

// refreshParents is the parent half of Reconcile, run on link events.
func (a *Engine) refreshParents(ctx context.Context) {
	a.netOps.Lock()
	defer a.netOps.Unlock()
	hl, err := a.listHost()
	if err != nil {
		a.log.Warn("refresh parents: list links", "err", err)
		return
	}
	a.refreshParentsFrom(ctx, hl)
}

// refreshParentsFrom is refreshParents with the host's links listed.
// Caller holds netOps.
func (a *Engine) refreshParentsFrom(ctx context.Context, hl hostListing) {
	defer a.tombs.prune(hl.seq)
	present := map[string]link.Info{}
	for _, l := range hl.links {
		present[l.Name] = l
	}
	nets := a.networkList()
	defer a.log.Debug("parents refreshed", "networks", len(nets))
	for _, n := range nets {
		st := a.ensureParent(ctx, n, present)
		if st.status == StatusOK {
			if err := a.attachNetwork(ctx, n, &hl); err != nil {
				st = health{status: StatusDatapathFailed, parent: n.Parent, err: err}
			}
			a.ensureShim(ctx, n, present)
		}
		n.mu.Lock()
		old := n.status
		n.status = st
		n.mu.Unlock()
		if st.String() != old.String() {
			a.log.Info("network status changed", "network", n.name(), "status", st.String(), "was", old.String())
		}
		if st.status == StatusOK && n.linksMoved() {
			a.reattachAll(ctx, n)
		}
	}
}

// linksMoved reports whether n's parent is another link than the one its
// endpoints' links were last made or found on (linksAt).
func (n *network) linksMoved() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.parentIndex != n.linksAt
}

// linked records that n's endpoints' links are on its parent now.
func (n *network) linked() {
	n.mu.Lock()
	n.linksAt = n.parentIndex
	n.mu.Unlock()
}

// reattachAll makes the links of n's ready endpoints again once its
// parent is another link than they were on (made again, back at a new
// index, or first found after a start without it): the kernel deleted
// them with the old one. An endpoint whose own operation is under way is
// waited for. When every one is attached, n is linked; else the next
// refresh tries again. Caller holds netOps.
func (a *Engine) reattachAll(ctx context.Context, n *network) {
	n.mu.Lock()
	ens := make([]*entry, 0, len(n.eps))
	for _, en := range n.eps {
		ens = append(ens, en)
	}
	n.mu.Unlock()
	done, failed := 0, 0
	for _, en := range ens {
		en.busy.Lock() // netOps, then busy: no holder of busy waits for netOps
		if e, ok := n.current(en); ok && e.State == Ready && a.netnsSame(e) {
			if _, err := a.reattach(ctx, n, en, e); err != nil {
				failed++
			} else {
				done++
			}
		}
		en.busy.Unlock()
	}
	if failed > 0 {
		a.log.Warn("parent is another link: not every endpoint attached again; the next parent refresh tries again", "network", n.name(), "parent", n.Parent, "attached", done, "failed", failed)
		return
	}
	n.linked()
	a.log.Info("parent is another link: endpoints attached again", "network", n.name(), "parent", n.Parent, "attached", done)
}
