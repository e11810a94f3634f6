package engine

import (
	"context"
	"slices"
	"time"

	"github.com/mvlan/mvlan/dhcp"
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
// does. IPv4 only: a network with --ipv6 has no DHCPv6 for Docker yet.

// leaseHandoff leases e's address once its link is in its sandbox. A
// failure is logged and leaves e ready without a lease (doctor reports
// it; the container runs already), and seekLease asks again every
// retryExpired. Caller holds e's busy lock.
func (a *Engine) leaseHandoff(ctx context.Context, n *network, e *endpoint) {
	if !n.DHCP {
		return
	}
	if err := a.acquireLease(ctx, n, e); err != nil {
		a.log.Error("Docker endpoint has no address", "name", e.Name, "network", n.name(), "err", err)
	}
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
// retryExpired from now + first, then keeps the lease it gets.
func (a *Engine) seekLease(n *network, en *entry, first time.Duration) {
	a.leases.spawn(func(ctx context.Context) {
		for wait := first; ; wait = retryExpired {
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

// tryLease leases en's address once; it reports whether en has a lease.
func (a *Engine) tryLease(ctx context.Context, n *network, en *entry) bool {
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok || e.State != Ready {
		return false
	}
	if e.Lease != nil {
		return true
	}
	before := slices.Clone(e.Addrs)
	if err := a.acquireLease(ctx, n, &e); err != nil {
		a.log.Debug("still no DHCP lease", "name", e.Name, "network", n.name(), "err", err)
		return false
	}
	if err := a.store.UpdateEndpoint(e.api()); err != nil {
		a.log.Warn("DHCP lease not stored", "name", e.Name, "err", err)
	}
	n.mu.Lock()
	n.set(en, e)
	n.mu.Unlock()
	a.shimRoutesIfMoved(n, before, e.Addrs)
	return true
}

// leaveLease gives e's lease back as its container leaves (Leave) and
// marks it given back (expired), so that RemoveHandoff does not send the
// release again. The mark is not stored: a restart before RemoveHandoff
// gives the lease back once more (settleLease), which does no harm.
// Caller holds en's busy lock.
func (a *Engine) leaveLease(ctx context.Context, n *network, en *entry, e *endpoint) {
	if !a.releaseLease(ctx, n, *e) {
		return
	}
	l := *e.Lease
	l.State = dhcp.Expired
	e.Lease = &l
	n.mu.Lock()
	n.set(en, *e)
	n.mu.Unlock()
}
