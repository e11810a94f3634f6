package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
)

// CreateEndpoint attaches a namespace (one mvlan makes, or req.Netns) to a
// network. Order for crash safety: the endpoint and its addresses are
// stored as "creating", the namespace and link are made, then the
// endpoint is marked ready; on start a "creating" endpoint is undone (or
// adopted, when its kernel side is whole). The link is made while the
// record commits, and nothing of it outlives a crash before the record is
// on disk: a namespace mvlan makes has no name (a link.Spare, gone with
// the process) until realize binds it at its path; a link in someone
// else's has an intent (engine/intent.go) that the next start undoes.
// The link's addresses are announced only once the record is on disk.
//
// Only the endpoint's own lock is held across the kernel work: attaches of
// different endpoints run in parallel, and readers never wait for them.
func (a *Engine) CreateEndpoint(ctx context.Context, req api.EndpointCreate) (_ api.Endpoint, err error) {
	n, err := a.lookup(req.Network)
	if err != nil {
		return api.Endpoint{}, err
	}
	en, repeat, err := a.admitOrRepeat(ctx, n, req)
	if en == nil {
		return repeat, err
	}
	defer en.busy.Unlock()
	e := en.ep
	defer a.macs.release(e.MAC, e.ID) // admit's claim: the row is written or undone by then
	crashpoint.Hit("endpoint-create:after-admit")
	e.macWait = n.macGoing(e.MAC, time.Now())
	stored := a.storeCreating(n, e) // first: the commit is the longest part
	intent := func() error { return nil }
	finished := false
	defer func() {
		if err == nil && !finished {
			return // a panic: the intent stays for the next start
		}
		if err != nil {
			_ = stored() // undo after the record, which it deletes
			uerr := a.undoEndpoint(context.WithoutCancel(ctx), n, en, e)
			if err = errors.Join(err, uerr); uerr != nil {
				return // the intent stays for the next start
			}
		}
		if ierr := intent(); ierr != nil {
			// Harmless: a start drops it while the record is there, and
			// after a removal its undo finds nothing of e's.
			a.log.Warn("left behind", "name", e.Name, "err", ierr)
		}
	}()
	done, err := a.intend(e)
	if err != nil {
		return api.Endpoint{}, err
	}
	intent = done
	if err = a.realize(ctx, n, &e, stored); err != nil {
		return api.Endpoint{}, err
	}
	if err = stored(); err != nil {
		return api.Endpoint{}, err
	}
	release, err := a.acquireLeases(ctx, n, &e)
	if err != nil {
		return api.Endpoint{}, err
	}
	defer func() {
		if err != nil {
			release(context.WithoutCancel(ctx))
		}
	}()
	if err = a.markReady(n, en, &e); err != nil {
		return api.Endpoint{}, err
	}
	a.log.Info("endpoint attached", "name", e.Name, "network", n.name(), "netns", e.Netns, "addrs", e.Addrs, "mac", e.MAC.String())
	out := e.api()
	out.Network = n.name()
	finished = true
	return out, nil
}

// acquireLeases takes e's DHCP leases on a DHCP network (v4, then v6);
// release gives back those it took.
func (a *Engine) acquireLeases(ctx context.Context, n *network, e *endpoint) (_ func(context.Context), err error) {
	var undo []func(context.Context)
	release := func(ctx context.Context) {
		for _, u := range slices.Backward(undo) {
			u(ctx)
		}
	}
	defer func() {
		if err != nil {
			release(context.WithoutCancel(ctx))
		}
	}()
	if n.DHCP {
		if err = a.acquireLease(ctx, n, e); err != nil {
			return nil, err
		}
		undo = append(undo, func(ctx context.Context) { a.releaseLease(ctx, n, *e) })
		crashpoint.Hit("endpoint-create:after-lease")
	}
	if n.dhcp6() {
		if err = a.acquireLease6(ctx, n, e); err != nil {
			return nil, err
		}
		undo = append(undo, func(ctx context.Context) { a.releaseLease6(ctx, n, *e) })
		crashpoint.Hit("endpoint-create:after-lease6")
	}
	return release, nil
}

// markReady records e ready and publishes it in the index.
func (a *Engine) markReady(n *network, en *entry, e *endpoint) error {
	e.State = Ready
	if n.DHCP {
		// The lease must be on disk before it is used: a DHCP endpoint
		// found "creating" without one is not adopted (settleLease).
		if err := a.store.UpdateEndpoint(e.api()); err != nil {
			return fmt.Errorf("store endpoint %s: %w", e.Name, err)
		}
	} else {
		a.storeReadyLater(*e)
	}
	n.mu.Lock()
	n.set(en, *e)
	n.mu.Unlock()
	a.fresh.add(n, en)
	if n.DHCP {
		a.keep(n, en)
	}
	a.shimRoutesAdded(n, en)
	return nil
}

// admit checks e against the network's endpoints, reserves its addresses
// and puts it in the index as "creating", with its lock held.
func (a *Engine) admit(n *network, e endpoint, req api.EndpointCreate) (_ *entry, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.ok() {
		return nil, conflict(fmt.Errorf("network %s cannot take endpoints now: %s", n.name(), n.health()))
	}
	if o := n.byCNI[cniKey(req.CNI)]; req.CNI != nil && o != nil {
		return nil, &repeatedAdd{o} // a repeat or a replacement: answerRepeat tells
	}
	if o := n.byName[e.Name]; o != nil {
		return nil, conflict(&nameInUse{e.Name, n.name()})
	}
	if len(e.MAC) > 0 {
		if err := n.macInUse(e.MAC); err != nil {
			return nil, err
		}
		if err := a.claimOnHost(n, e); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				a.macs.release(e.MAC, e.ID)
			}
		}()
	}
	// A namespace mvlan makes is new: only connect looks at the others'.
	if o := n.byNetns[e.NetnsInode]; !e.OwnsNetns && o != nil {
		return nil, conflict(fmt.Errorf("namespace %s is already on network %s (endpoint %s)", e.Netns, n.name(), o.ep.Name))
	}
	reserve := a.reserve
	if n.DHCP {
		reserve = func(n *network, _ *endpoint, req api.EndpointCreate) error { return reserveDHCP(n, req) }
	}
	if err := reserve(n, &e, req); err != nil {
		return nil, err
	}
	return n.add(e), nil
}

// newAndAdmit validates req and admits it to n. A clash (name, namespace,
// address) that may be with an endpoint whose removal is still finishing
// in the background is tried again once those removals are done, so that
// `mvlan rm -f c1 && mvlan run --name c1 --ip ...` works as it always did.
// An address picked by the network (no --ip, or no --ip6 on an IPv6
// network) is picked once the network's removals are done, so that
// `mvlan rm -f c1 && mvlan run -d` gets the address c1 had, if the lowest.
// A run whose container name is a pending removal's waits for it, so that
// `mvlan rm -f c1 && mvlan run -d --name c1 --net other` gets a namespace
// of its own.
func (a *Engine) newAndAdmit(ctx context.Context, n *network, req api.EndpointCreate) (endpoint, *entry, error) {
	if req.IP == "" || (n.IPv6 && req.IP6 == "") {
		a.removals.waitNetwork(ctx, n.ID)
	}
	if req.Netns == "" && req.Name != "" {
		// The name's namespace may still be a removal's (on any network).
		a.removals.waitNetns(ctx, link.NetnsPath(req.Name))
	}
	if req.Netns != "" {
		// A runtime's namespace whose endpoint a CNI DEL is still
		// removing (ReleaseEndpoints): its link may hold the name.
		a.removals.waitNetns(ctx, req.Netns)
	}
	for try := 0; ; try++ {
		e, en, err := a.newAdmitted(n, req)
		if err == nil || try > 0 || KindOf(err) != KindConflict || !a.removals.wait(ctx) {
			return e, en, err
		}
	}
}

// admitOrRepeat admits req to n (its entry locked), or answers a repeated
// attach (entry nil) with the endpoint made before. A runtime's attach
// whose identity (req.CNI) has an endpoint in another namespace replaces
// it (replaceStale) and is then admitted; the replaced endpoint's MAC is
// noted as going (network.noteGoing) when its namespace was gone, as the
// sweep notes it: its link may still be on the parent for a while. One whose endpoint was removed while the
// attach waited for it is attached afresh. The endpoint of the identity
// is looked for before the network's space is prepared, so that a repeat
// costs no cluster claim and a replaced endpoint's addresses are free for
// the claims of the new one; admit finds one made meanwhile.
func (a *Engine) admitOrRepeat(ctx context.Context, n *network, req api.EndpointCreate) (*entry, api.Endpoint, error) {
	held := n.cniEntry(req.CNI)
	for try := 0; ; try++ {
		if held == nil {
			en, err := a.prepareAndAdmit(ctx, n, req)
			r, ok := isRepeat(err)
			if !ok {
				return en, api.Endpoint{}, err
			}
			held = r.en
		}
		out, err := a.answerRepeat(ctx, n, held, req)
		held = nil
		var stale *staleAttachment
		replace := errors.As(err, &stale)
		if !replace && !errors.Is(err, errRepeatGone) {
			return nil, out, err
		}
		if try > 0 {
			return nil, api.Endpoint{}, Busy(fmt.Errorf("attachment of %s: removed and made again by other requests meanwhile; try again", req.Netns))
		}
		if replace {
			if err := a.replaceStale(ctx, n, stale, req.Netns); err != nil {
				return nil, api.Endpoint{}, err
			}
			if stale.gone {
				n.noteGoing(stale.ep.MAC, time.Now())
			}
		}
	}
}

// prepareAndAdmit is newAndAdmit after the network's space is prepared
// for req (a cluster network's blocks: engine/cluster.go); a block used
// up by parallel attaches meanwhile is prepared for again, a few times.
func (a *Engine) prepareAndAdmit(ctx context.Context, n *network, req api.EndpointCreate) (*entry, error) {
	for try := 0; ; try++ {
		if err := a.prepare(ctx, n, req); err != nil {
			abandon(n, req)
			return nil, err
		}
		_, en, err := a.newAndAdmit(ctx, n, req)
		if err == nil {
			if err = a.dad(ctx, n, en, req); err == nil { // cluster networks: engine/dad.go
				return en, nil
			}
		}
		if _, ok := n.space.(preparer); !ok || try >= 3 || !(errors.Is(err, ipam.ErrExhausted) || errors.Is(err, errDADRetry)) {
			abandon(n, req)
			return nil, err
		}
	}
}

// sortedByName sorts endpoints by name, then network, as ps shows them.
func sortedByName(eps []endpoint) []endpoint {
	slices.SortFunc(eps, func(x, y endpoint) int {
		return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.NetworkID, y.NetworkID))
	})
	return eps
}
