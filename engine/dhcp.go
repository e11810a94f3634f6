package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// A network's IPAM backend is its local pools (ipam.Space: reserve, before
// the link exists) or, with --ipam-driver dhcp, the DHCP server on its
// wire: the address is leased once the link is up (acquireLeases, after
// realize in CreateEndpoint), renewed by keepLease, given back on removal
// (releaseLease).
// The leased address is the endpoint's Addrs, indexed like any other but
// never held in the network's space.

// acquireTimeout bounds a new endpoint's DISCOVER..ACK.
const acquireTimeout = 8 * time.Second

// retryExpired is how often an endpoint whose lease expired asks again,
// give or take retryFuzz (fuzzWait).
const retryExpired = 10 * time.Second

// retryFuzz is how far, as a share of the wait, each retry of an expired
// lease falls before or after its time, at random: endpoints whose leases
// expired together (a server down) do not all ask together again and
// again.
const retryFuzz = 0.1

// fuzzWait is d moved by f (in [-1, 1], clamped) times retryFuzz of it.
func fuzzWait(d time.Duration, f float64) time.Duration {
	return d + time.Duration(min(max(f, -1), 1)*retryFuzz*float64(d))
}

// randFuzz is a random share for fuzzWait.
func randFuzz() float64 { return 2*rand.Float64() - 1 }

// reserveDHCP refuses what a DHCP network cannot do. Caller holds n.mu.
func reserveDHCP(n *network, req api.EndpointCreate) error {
	if req.IP != "" || req.IP6 != "" {
		return invalid(fmt.Errorf("network %s takes its addresses from its DHCP server (--ipam-driver dhcp); leave out --ip and --ip6", n.name()))
	}
	return nil
}

// dhcpLink is e's link as the DHCP client sees it: an offer of the host
// shim's address is refused like one outside the subnet. The client-id is the
// lease's own when e has one, else derived from n's identity (not its
// name: same-named networks and containers on two hosts of one LAN would
// ask the server for one lease).
func (a *Engine) dhcpLink(n *network, e endpoint) dhcp.Link {
	l := dhcpOn(n, e, a.clientIDOf(n, e, false))
	if p, ok := n.pool4(); ok {
		l.Subnet = p.Subnet
	}
	if e.Lease != nil {
		l.Want = e.Lease.Addr.Addr()
	}
	l.Refuse = a.leaseRefuse(n, e)
	return l
}

// leaseProbing is the DHCP client's Link.Probing for endpoint id of n, in
// its lease keeper (renewOnce; not where the caller holds the busy lock:
// an attach's first lease, whose row has no IPv4 address, so any probe
// passes): its table row is marked probing (loader.Endpoint.Probing) while
// the client checks an address the server moved its lease to, so that the
// check's ARP probes, from its link, are not dropped as for another's.
// The mark is n.probing's, which tableEntry reads: every writer of the
// row keeps it. The row is rewritten under the endpoint's busy lock, as
// every writer does; while another holds it (the tamper check, the other
// family's keeper), marking waits (until ctx ends: then the check may hear
// no answer, as a client without the check), and unmarking is left to a
// goroutine that waits for the lock (the exchange is over by then, so an
// rm holding it while it waits for the exchange goes on), which Close
// waits for as for the lease keepers.
func (a *Engine) leaseProbing(n *network, id string) func(context.Context, bool) {
	return func(ctx context.Context, on bool) {
		if on {
			n.probing.Store(id, struct{}{})
		} else {
			n.probing.Delete(id)
		}
		n.mu.Lock()
		en := n.eps[id]
		n.mu.Unlock()
		if en == nil {
			return
		}
		for !en.busy.TryLock() {
			if !on { // like a keeper, so that Close waits for it (stopped: the next start writes the row)
				a.leases.spawn(func(context.Context) {
					en.busy.Lock()
					defer en.busy.Unlock()
					a.rewriteRow(n, en)
				})
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
		defer en.busy.Unlock()
		a.rewriteRow(n, en)
	}
}

// probingHeld is leaseProbing for a caller that holds e's busy lock (an
// attach's first lease, a Docker endpoint's at hand-off, a lease given
// back at start): the mark and e's row, at once. The datapath lets the
// endpoint decline an address only while it is marked: an endpoint
// without an address may run a container already (a Docker one, or one
// connected), which must not decline its neighbours' (ISC dhcpd abandons
// the lease of whatever address a DHCPDECLINE names).
func (a *Engine) probingHeld(n *network, e endpoint) func(context.Context, bool) {
	return func(_ context.Context, on bool) {
		if on {
			n.probing.Store(e.ID, struct{}{})
		} else {
			n.probing.Delete(e.ID)
		}
		if e.Ifindex == 0 {
			return
		}
		if err := a.setTableEntry(n, e); err != nil {
			a.log.Warn("DHCP address check: the endpoint's row is not rewritten; its decline may be dropped", "endpoint", e.Name, "err", err)
		}
	}
}

// rewriteRow writes en's table row again if it is a ready endpoint with
// a link. Caller holds en's busy lock.
func (a *Engine) rewriteRow(n *network, en *entry) {
	cur, ok := n.current(en)
	if !ok || cur.State != Ready || cur.Ifindex == 0 {
		return
	}
	if err := a.setTableEntry(n, cur); err != nil {
		a.log.Warn("DHCP address check: the endpoint's row is not rewritten; its probe may be dropped, or pass after the check", "endpoint", cur.Name, "err", err)
	}
}

// clientIDOf is the identity e's DHCP client of the family asks under
// (the IPv4 client identifier; with v6 the DUID): its lease's, else made
// of n's identity and e's name.
func (a *Engine) clientIDOf(n *network, e endpoint, v6 bool) []byte {
	l, derive := e.Lease, dhcp.ClientID
	if v6 {
		l, derive = e.Lease6, dhcp.DUID6
	}
	if l != nil && len(l.ClientID) > 0 {
		return l.ClientID
	}
	return derive(a.identity(n), e.Name)
}

// row is e's table row (tableEntry) with the identities its DHCP clients
// ask under on a DHCP network, which the datapath holds its link's DHCP
// messages to (dhcp_guard): a container cannot ask, renew, release or
// decline in a neighbour's name.
func (a *Engine) row(n *network, e endpoint) loader.Endpoint {
	r := tableEntry(n, e)
	if n.DHCP {
		r.DHCPClientID = a.clientIDOf(n, e, false)
	}
	if n.dhcp6() {
		r.DHCPDUID = a.clientIDOf(n, e, true)
	}
	return r
}

// dhcpOn is e's link for a DHCP client with clientID: by index, and
// checked to be a macvlan of n's parent (dhcp/iface.go says why).
func dhcpOn(n *network, e endpoint, clientID []byte) dhcp.Link {
	parent, _ := n.indexes()
	return dhcp.Link{Netns: e.Netns, Ifindex: e.Ifindex, Parent: parent, MAC: e.MAC, ClientID: clientID, Hostname: e.Name}
}

// acquireLease leases e's address from the network's DHCP server and puts
// it on e's link. Caller holds e's busy lock; e's link is up.
func (a *Engine) acquireLease(ctx context.Context, n *network, e *endpoint) error {
	l, err := a.askLease(ctx, n, *e, a.probingHeld(n, *e))
	if err != nil {
		return err
	}
	return a.takeLease(ctx, n, e, l)
}

// askLease runs e's DISCOVER..ACK, bounded by acquireTimeout, its address
// check marked by probing (leaseProbing without e's busy lock,
// probingHeld with it).
func (a *Engine) askLease(ctx context.Context, n *network, e endpoint, probing func(context.Context, bool)) (dhcp.Lease, error) {
	ctx, cancel := context.WithTimeout(ctx, acquireTimeout)
	defer cancel()
	l := a.dhcpLink(n, e)
	l.Probing = probing
	lease, err := dhcp.Acquire(ctx, l)
	if err != nil {
		return dhcp.Lease{}, conflict(fmt.Errorf("network %s (--ipam-driver dhcp): no address for %s (MAC %s): %w", n.name(), e.Name, e.MAC, err))
	}
	return lease, nil
}

// takeLease puts l, just leased for e, on e's link, or gives it back.
// Caller holds e's busy lock.
func (a *Engine) takeLease(ctx context.Context, n *network, e *endpoint, l dhcp.Lease) error {
	if err := a.applyLease(n, e, l); err != nil {
		return errors.Join(err, a.releaseUnused(ctx, n, *e, l))
	}
	a.learnSubnet(n, l)
	a.log.Info("DHCP lease", "name", e.Name, "network", n.name(), "addr", l.Addr, "router", l.Router, "server", l.Server, "expiry", l.Expiry)
	return nil
}

// releaseUnused releases l, leased for e but not made e's.
func (a *Engine) releaseUnused(ctx context.Context, n *network, e endpoint, l dhcp.Lease) error {
	return dhcp.Release(context.WithoutCancel(ctx), a.dhcpLink(n, e), l)
}

// applyLease makes l e's: the datapath first (its frames must pass the
// anti-spoofing check), then the link, then resolv.conf. A failure before
// resolv.conf leaves e and its datapath entry as they were; one of
// resolv.conf (a *resolvError) leaves l applied and e made of it.
// Caller holds e's busy lock.
func (a *Engine) applyLease(n *network, e *endpoint, l dhcp.Lease) error {
	// An expired lease's address is taken off too: expire may not have
	// (a crash before it ran, a failed SetLeased), and a stale address left
	// on the link would be its source, which the datapath drops.
	var old netip.Prefix
	fresh := e.Lease == nil || e.Lease.State == dhcp.Expired
	if e.Lease != nil {
		old = e.Lease.Addr
	}
	next := *e
	next.Addrs, next.Lease = withAddr(e.Addrs, l.Addr), &l
	if err := a.setTableEntry(n, next); err != nil {
		return err
	}
	router := l.Router
	if n.Internal {
		router = netip.Addr{}
	}
	if fresh || old != l.Addr || e.Lease.Router != l.Router {
		kept, err := link.SetLeased(e.Netns, e.Ifindex, old, l.Addr, router)
		if err != nil {
			return errors.Join(fmt.Errorf("put leased %s on %s: %w", l.Addr, e.Name, err), a.setTableEntry(n, *e))
		}
		next.Unrouted = nil // a DHCP network's only gateway is its lease's router
		if kept {
			next.Unrouted = []netip.Addr{router}
		}
	}
	err := writeResolv(*e, resolvBefore(*e), *resolvLease(&l, e.Lease6))
	next.resolvStale = err != nil
	*e = next
	return err
}

// resolvBefore is what e's resolv.conf was written from (resolvLease of
// its leases); nil, which writes it whatever the new lease says, when the
// last write failed.
func resolvBefore(e endpoint) *dhcp.Lease {
	if e.resolvStale {
		return nil
	}
	return resolvLease(e.Lease, e.Lease6)
}

// givenBack marks e's DHCPv4 lease, which a DHCPRELEASE gave back,
// expired and stores the record so: a restart before the endpoint's
// removal is over (settleLease) must not put the address, which the
// server may have given to another host since, back on the link, where
// its gratuitous ARP would take it from that host, to release it again.
// Caller holds en's busy lock.
func (a *Engine) givenBack(n *network, en *entry, e *endpoint) {
	l := *e.Lease
	l.State = dhcp.Expired
	e.Lease = &l
	if err := a.store.UpdateEndpoint(e.api()); err != nil {
		a.log.Warn("DHCP lease given back, not stored so: a restart before the removal is over gives it back again", "name", e.Name, "network", n.name(), "err", err)
	}
	n.mu.Lock()
	n.set(en, *e)
	n.mu.Unlock()
}

// releaseLease sends DHCPRELEASE for e's lease (best effort: the server
// takes the address back at expiry anyway); it reports whether it did.
func (a *Engine) releaseLease(ctx context.Context, n *network, e endpoint) bool {
	if !n.DHCP || e.Lease == nil || e.Lease.State == dhcp.Expired || e.Lease.StateAt(time.Now()) == dhcp.Expired {
		return false // the server may have given it to another host: no packet from it
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := dhcp.Release(ctx, a.dhcpLink(n, e), *e.Lease); err != nil {
		a.log.Warn("DHCPRELEASE not sent; the server keeps the lease until it expires", "name", e.Name, "network", n.name(), "addr", e.Lease.Addr, "err", err)
		return false
	}
	return true
}
