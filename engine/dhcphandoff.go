package engine

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/link"
)

// Docker's endpoints on a DHCP network (docker network create
// --ipam-driver null): Docker asks no address of anyone, moves the link
// into the container's namespace and starts the container; once the link
// is there (FinishHandoff), the agent leases its address from inside that
// namespace as for any endpoint, keeps the lease, and gives it back when
// the container leaves (Leave), while the address is still on the link;
// a lease Leave did not give back (its release failed, or Docker deleted
// the endpoint without a Leave) is given back by RemoveHandoff, from the
// link if it is still in the sandbox: it is the agent's, and the endpoint
// is gone after that.
// Docker does not know the address (docker inspect shows none); mvlan ps
// does. IPv4 only: no DHCPv6 for Docker yet, and Docker's front end
// refuses such a network with --ipv6 (docker.errDHCPv6).

// leaseHandoff leases e's address once its link is in its sandbox. A
// failure is logged and leaves e ready without a lease (doctor reports
// it; the container runs already), and seekLease asks again every
// retryExpired. The client binds to e.Ifindex in the sandbox: if the
// attach there failed just now, e has its link's keys in the host
// namespace, and seekLease attaches it again first (keyInSandbox).
// Caller holds e's busy lock.
func (a *Engine) leaseHandoff(ctx context.Context, n *network, e *endpoint) {
	if !n.DHCP {
		return
	}
	err := errNotInSandbox
	if a.sandboxKeyed(*e) {
		err = a.acquireLease(ctx, n, e)
	}
	if err != nil {
		a.log.Error("Docker endpoint has no address", "name", e.Name, "network", n.name(), "err", err)
	}
}

// errNotInSandbox: a Docker endpoint's lease waits for its link's keys in
// its sandbox.
var errNotInSandbox = errors.New("its link is not attached in its sandbox: attached again before the next ask")

// sandboxKeyed reports whether e's keys are its link's in its namespace:
// it has some, and not those its link had in the host's (hostKeyed).
func (a *Engine) sandboxKeyed(e endpoint) bool { return e.Ifindex != 0 && !a.hostKeyed(e) }

// keyInSandbox attaches e, a ready Docker endpoint whose keys are not its
// link's in its sandbox (its attach failed at hand-off), at that link,
// which its lease is then sought on. A failure to put its programs on
// after its row moved is logged: e is keyed in its sandbox. Caller holds
// e's busy lock and stores e.
func (a *Engine) keyInSandbox(ctx context.Context, n *network, e *endpoint) error {
	if a.sandboxKeyed(*e) {
		return nil
	}
	l, err := a.sandboxLink(n, *e)
	if err == nil {
		err = a.attachEndpointAtMode(ctx, n, e, l.Index, a.modes.Live, false, 0)
	}
	if !a.sandboxKeyed(*e) {
		return fmt.Errorf("attach in its sandbox: %w", cmp.Or(err, errNotInSandbox))
	}
	if err != nil {
		a.log.Warn("Docker endpoint attached in its sandbox without its datapath programs; the next agent start attaches them", "name", e.Name, "err", err)
	} else {
		a.log.Info("Docker endpoint attached in its sandbox", "name", e.Name, "ifname", l.Name, "ifindex", e.Ifindex)
	}
	return nil
}

// sandboxLink finds e's link in its namespace, if that is still e's, as
// the DHCP client checks it (dhcp/iface.go): a macvlan with e's MAC whose
// lower link is on the host, n's parent. No link the container makes is
// one, also not one on a link of a namespace it made.
func (a *Engine) sandboxLink(n *network, e endpoint) (link.Info, error) {
	if !a.netnsAlive(e) {
		return link.Info{}, fmt.Errorf("%s is not the endpoint's namespace any more", e.Netns)
	}
	links, err := a.ns.Macvlans(e.Netns, 0)
	if err != nil {
		return link.Info{}, err
	}
	parent, _ := n.indexes()
	for _, l := range links {
		if l.Kind == "macvlan" && l.LowerOnHost && (parent == 0 || l.ParentIndex == parent) && bytes.Equal(l.MAC, e.MAC) {
			return l, nil
		}
	}
	return link.Info{}, fmt.Errorf("no macvlan of %s with MAC %s in %s", n.Parent, e.MAC, e.Netns)
}

// spawn runs fn for the engine's life like a keeper (stopped by Close);
// false: the keepers are stopped, and fn never runs.
func (k *keepers) spawn(fn func(context.Context)) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return false
	}
	if k.ctx == nil {
		k.ctx, k.cancel = context.WithCancel(context.Background())
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		fn(k.ctx)
	}()
	return true
}

// seekLease asks for a lease for en, a ready endpoint of DHCP network n
// that has none (a Docker container started while no server answered, or
// caught between its lease and its record by a restart), every
// retryExpired (give or take retryFuzz) from now + first, then keeps the
// lease it gets.
func (a *Engine) seekLease(n *network, en *entry, first time.Duration) {
	a.leases.spawn(func(ctx context.Context) {
		for wait := first; ; wait = fuzzWait(retryExpired, randFuzz()) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			n.mu.Lock()
			e, gone := en.ep, en.gone
			n.mu.Unlock()
			if gone || e.State != Ready {
				return
			}
			if e.Lease == nil && !a.tryLease(ctx, n, en) {
				continue
			}
			a.keepLease(ctx, n, en, false)
			return
		}
	})
}

// tryLease leases en's address once, on its link in its sandbox, which
// it attaches first if en is not keyed there (keyInSandbox); it reports
// whether en has a lease. New keys are stored without a lease too. The
// exchange runs without en's lock, as a keeper's does, so that a Leave or
// rm meanwhile ends it (markRemoving) instead of waiting up to
// acquireTimeout for it, and Docker's calls with it (Driver.mu).
func (a *Engine) tryLease(ctx context.Context, n *network, en *entry) bool {
	e, ask, has := a.keyForLease(ctx, n, en)
	if !ask {
		return has
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	end, ok := n.beginExchange(en, false, cancel)
	if !ok {
		return false // leaving
	}
	crashpoint.Hit("dhcp-seek:asking")
	l, err := a.askLease(ctx, n, e, a.leaseProbing(n, e.ID))
	end()
	if err != nil {
		a.log.Debug("still no DHCP lease", "name", e.Name, "network", n.name(), "err", err)
		return false
	}
	return a.settleSought(ctx, n, en, e, l)
}

// keyForLease readies en, ready and without a lease, for tryLease's ask:
// keyed at its link in its sandbox, new keys stored. ask says to ask; has
// that en has a lease already.
func (a *Engine) keyForLease(ctx context.Context, n *network, en *entry) (e endpoint, ask, has bool) {
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok || e.State != Ready || e.Lease != nil {
		return e, false, ok && e.State == Ready && e.Lease != nil
	}
	before := e
	err := a.keyInSandbox(ctx, n, &e)
	if err != nil {
		a.log.Debug("still no DHCP lease", "name", e.Name, "network", n.name(), "err", err)
	}
	if e.NetnsCookie != before.NetnsCookie || e.Ifindex != before.Ifindex {
		a.storeSought(n, en, before, e)
	}
	return e, err == nil, false
}

// settleSought makes l, the lease tryLease got for asked, en's, unless en
// changed meanwhile (left, removed, keyed elsewhere, leased): then l is
// given back. It reports whether en has a lease.
func (a *Engine) settleSought(ctx context.Context, n *network, en *entry, asked endpoint, l dhcp.Lease) bool {
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok || e.State != Ready || e.Lease != nil || e.NetnsCookie != asked.NetnsCookie || e.Ifindex != asked.Ifindex {
		if err := a.releaseUnused(ctx, n, asked, l); err != nil {
			a.log.Debug("DHCP lease of an endpoint that changed meanwhile not given back", "name", asked.Name, "err", err)
		}
		return ok && e.State == Ready && e.Lease != nil
	}
	before := e
	if err := a.takeLease(ctx, n, &e, l); err != nil {
		a.log.Debug("still no DHCP lease", "name", e.Name, "network", n.name(), "err", err)
		return false
	}
	a.storeSought(n, en, before, e)
	return true
}

// storeSought stores and indexes e, en's after tryLease keyed or leased
// it (before: as it was). Caller holds en's busy lock.
func (a *Engine) storeSought(n *network, en *entry, before, e endpoint) {
	if err := a.store.UpdateEndpoint(e.api()); err != nil {
		a.log.Warn("DHCP lease not stored", "name", e.Name, "err", err)
	}
	n.mu.Lock()
	n.set(en, e)
	n.mu.Unlock()
	a.shimRoutesIfMoved(n, before.Addrs, e.Addrs)
}

// leaveLease gives e's lease back as its container leaves (Leave) and
// marks it given back (givenBack), so that neither RemoveHandoff nor a
// restart before it sends the release again. Caller holds en's busy lock.
func (a *Engine) leaveLease(ctx context.Context, n *network, en *entry, e *endpoint) {
	if a.releaseLease(ctx, n, *e) {
		a.givenBack(n, en, e)
	}
}
