package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/link"
)

// keepers runs one keepLease per endpoint with a lease, for the engine's
// life (Open to Close).
type keepers struct {
	mu      sync.Mutex
	stopped bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// stop ends every keeper and waits for them; none starts afterwards.
func (k *keepers) stop() {
	k.mu.Lock()
	k.stopped = true
	if k.cancel != nil {
		k.cancel()
	}
	k.mu.Unlock()
	k.wg.Wait()
}

// keep starts keeping en's lease, and its DHCPv6 lease on a network with
// IPv6 (each by its own keeper).
func (a *Engine) keep(n *network, en *entry) {
	a.leases.spawn(func(ctx context.Context) { a.keepLease(ctx, n, en, false) })
	if n.dhcp6() {
		a.leases.spawn(func(ctx context.Context) { a.keepLease(ctx, n, en, true) })
	}
}

// pollGone bounds a keeper's sleep, so that it notices its endpoint's
// removal.
const pollGone = time.Second

// keepLease renews en's lease (with v6, its DHCPv6 lease) at T1 (and
// again, halving the wait, until T2), rebinds from T2 to the expiry, and
// then takes the address off and asks for a new lease every retryExpired
// (after refusals in a row, retryWait), each give or take retryFuzz: RFC 2131 4.4.5, RFC 8415
// 18.2.4-5. It returns once en is gone or ctx is done.
func (a *Engine) keepLease(ctx context.Context, n *network, en *entry, v6 bool) {
	skew := clockSkew() // the lease is in the wall clock of now (leaseclock.go)
	for {
		if now := clockSkew(); stepBack(skew, now) != 0 {
			a.shiftLease(n, en, v6, stepBack(skew, now))
			skew = now
		} else if now != 0 {
			skew = now // a slew taken up, or a step forward left to the wall clock
		}
		n.mu.Lock()
		e, gone := en.ep, en.gone
		n.mu.Unlock()
		l := *e.lease(v6)
		if gone || e.State != Ready || l == nil {
			return
		}
		if wait := nextTry(*l, time.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(wait, pollGone)):
			}
			continue
		}
		a.renewOnce(ctx, n, en, e, v6)
		n.mu.Lock()
		got := *en.ep.lease(v6)
		n.mu.Unlock()
		if got != nil && !got.Obtained.Equal(l.Obtained) {
			skew = clockSkew() // a lease it got is in the wall clock of now
		}
	}
}

// nextTry is how long to wait before the next renewal of l. l.State is
// the state its last failed try was made in: the first try of a state
// goes at once (at T1 to its server, at T2 to any: RFC 2131 4.4.5), later
// ones halfway to the next state's time, at least retryFloor apart.
func nextTry(l dhcp.Lease, now time.Time) time.Duration {
	switch {
	case l.State == dhcp.Expired && l.LastTry.IsZero():
		return 0 // no try since it expired (or since a start): INIT, RFC 2131 4.4.5
	case l.State == dhcp.Expired:
		return fuzzWait(retryWait(l.Refused), l.RetryFuzz) - now.Sub(l.LastTry)
	}
	switch st := l.StateAt(now); {
	case st == dhcp.Bound:
		return l.Renew.Sub(now)
	case st == dhcp.Expired:
		return 0 // it just expired
	case l.Err == "" || l.State < st:
		return 0
	case st == dhcp.Rebinding:
		return max(retryFloor(l), l.Expiry.Sub(l.LastTry)/2) - now.Sub(l.LastTry)
	}
	return max(retryFloor(l), l.Rebind.Sub(l.LastTry)/2) - now.Sub(l.LastTry)
}

// retryFloor is the least wait between failed tries of a renewal (or a
// rebinding) of l: RFC 2131 4.4.5's 60 s, less for a lease too short to
// renew that seldom (1/32 of it: seconds for a lease of minutes), never
// under 2 s.
func retryFloor(l dhcp.Lease) time.Duration {
	return min(max(l.Expiry.Sub(l.Obtained)/32, 2*time.Second), 60*time.Second)
}

// refusedFirst is the wait after the second refusal in a row (retryWait).
const refusedFirst = time.Second

// retryWait is how long an expired lease waits from its last try before
// asking again. After refused refusals (DHCPNAK) in a row: at once after
// the first (RFC 2131 4.4.5: back to INIT), then refusedFirst, doubling
// up to retryExpired, so that a server refusing every request is not
// asked in a tight loop; after no answer, retryExpired. nextTry moves it
// by the try's RetryFuzz (fuzzWait).
func retryWait(refused int) time.Duration {
	switch {
	case refused == 0 || refused > 16:
		return retryExpired
	case refused == 1:
		return 0
	}
	return min(refusedFirst<<(refused-2), retryExpired)
}

// tryLimit bounds a try for old begun at now: a renewal ends at T2, where
// rebinding (any server) begins, a rebinding at the expiry, where the
// address goes, not after the try; asking anew takes acquireTimeout.
func tryLimit(old dhcp.Lease, now time.Time) time.Duration {
	switch {
	case old.State == dhcp.Expired:
		return acquireTimeout
	case old.StateAt(now) == dhcp.Renewing:
		return min(acquireTimeout, old.Rebind.Sub(now))
	}
	return min(acquireTimeout, old.Expiry.Sub(now))
}

// renewOnce asks once; the exchange runs without en's lock, the result is
// applied and stored with it (settleTry).
func (a *Engine) renewOnce(ctx context.Context, n *network, en *entry, e endpoint, v6 bool) {
	now := time.Now()
	old, f, proto := *e.lease(v6), leaseFuncsOf(v6), protoName(v6)
	if old.State != dhcp.Expired && old.StateAt(now) == dhcp.Expired {
		a.expire(n, en, proto+" lease expired: the address is off the endpoint until a server answers", nil, v6)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, tryLimit(*old, now))
	defer cancel()
	end, ok := n.beginExchange(en, v6, cancel)
	if !ok {
		return // leaving
	}
	var l dhcp.Lease
	var err error
	link := a.dhcpLinkOf(n, e, v6)
	if !v6 { // the keeper holds no busy lock: the check may mark e's row
		link.Probing = a.leaseProbing(n, e.ID)
	}
	if old.State == dhcp.Expired {
		l, err = f.acquire(ctx, link)
	} else {
		l, err = f.renew(ctx, link, *old)
	}
	end()
	if errors.Is(err, dhcp.ErrNAK) {
		// The server says the lease is no longer the endpoint's (RFC 2131
		// 4.4.5: back to INIT): off the link at once, a new one asked for.
		what := "the renewal"
		if old.State == dhcp.Expired {
			what = "the new lease it offered"
		}
		a.expire(n, en, proto+" server refused "+what+" ("+nakName(v6)+"): the address is off the endpoint, asking for a new lease", err, v6)
		return
	}
	a.settleTry(n, en, v6, now, l, err)
}

// exchange is a keeper's DHCP exchange under way: cancel ends it, done
// is closed once it has returned.
type exchange struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// beginExchange records the keeper's exchange of the family for en, which
// cancel ends, unless en is leaving (no longer ready): then none may
// begin. end says it has returned.
func (n *network) beginExchange(en *entry, v6 bool, cancel context.CancelFunc) (end func(), ok bool) {
	x := &exchange{cancel: cancel, done: make(chan struct{})}
	i := familyIndex(v6)
	n.mu.Lock()
	defer n.mu.Unlock()
	if en.gone || en.ep.State != Ready {
		return nil, false
	}
	en.exchanges[i] = x
	return func() {
		n.mu.Lock()
		en.exchanges[i] = nil
		n.mu.Unlock()
		close(x.done)
	}, true
}

// endExchanges ends en's exchanges under way and waits until they have
// returned (not for what the keepers do next: that waits for en.busy). Once
// en is not ready no other begins.
func (n *network) endExchanges(en *entry) {
	n.mu.Lock()
	xs := en.exchanges
	n.mu.Unlock()
	for _, x := range xs {
		if x != nil {
			x.cancel()
			<-x.done
		}
	}
}

// familyIndex is 1 for IPv6, 0 for IPv4.
func familyIndex(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// settleTry makes l en's lease of the family, or, with err, records the
// failure of the try begun at began.
func (a *Engine) settleTry(n *network, en *entry, v6 bool, began time.Time, l dhcp.Lease, err error) {
	en.busy.Lock()
	defer en.busy.Unlock()
	cur, ok := n.current(en)
	if !ok || cur.State != Ready || *cur.lease(v6) == nil {
		return // leaving: its lease may be given back already
	}
	before, proto := usableAddrs(cur), protoName(v6)
	if err == nil {
		err = a.applyLeaseOf(n, &cur, l, v6)
	}
	if re := (*resolvError)(nil); errors.As(err, &re) { // the lease is on the link: it stands
		a.log.Warn(proto+" lease renewed, its DNS servers not written", "name", cur.Name, "network", n.name(), "err", err)
		err = nil
	}
	if err == nil {
		err = a.store.UpdateEndpoint(cur.api())
	}
	if err != nil {
		failed := **cur.lease(v6)
		failed.Err, failed.LastTry, failed.Refused, failed.RetryFuzz = err.Error(), time.Now(), 0, randFuzz()
		// The state the try was made in (nextTry). An expired one stays
		// so; one that expired meanwhile is the keeper's next turn
		// (expire takes the address off; marked expired here, it stayed).
		if failed.State != dhcp.Expired {
			failed.State = failed.StateAt(began)
		}
		*cur.lease(v6) = &failed
		a.log.Warn(proto+" renewal failed", "name", cur.Name, "network", n.name(), "state", failed.State, "expiry", failed.Expiry, "err", err)
	} else {
		a.log.Info(proto+" lease renewed", "name", cur.Name, "network", n.name(), "addr", l.Addr, "server", l.Server, "expiry", l.Expiry)
	}
	n.mu.Lock()
	n.set(en, cur)
	n.mu.Unlock()
	a.shimRoutesIfMoved(n, before, usableAddrs(cur))
}

// expire takes an expired (or refused) lease's address off en's link and
// out of its datapath entry: it is no longer the endpoint's to use, and
// the server may give it to another host, whose ARP and neighbour
// advertisements for it the endpoints' ingress must then let through. It
// reports it with msg. The keeper goes on asking (nextTry): after a
// refusal (the server's answer, recorded as the lease's error) at once,
// after more in a row less and less often.
func (a *Engine) expire(n *network, en *entry, msg string, refusal error, v6 bool) {
	en.busy.Lock()
	defer en.busy.Unlock()
	cur, ok := n.current(en)
	if !ok || cur.State != Ready || *cur.lease(v6) == nil {
		return // leaving: its link may be going, its lease given back
	}
	before, l := usableAddrs(cur), **cur.lease(v6)
	// No try has failed since it expired: the first ask goes at once.
	l.State, l.LastTry, l.Refused = dhcp.Expired, time.Time{}, 0
	if refusal != nil {
		l.LastTry, l.Refused, l.RetryFuzz = time.Now(), (**cur.lease(v6)).Refused+1, randFuzz()
		l.Err = refusal.Error()
	}
	*cur.lease(v6) = &l
	_, err := link.SetLeased(cur.Netns, cur.Ifindex, l.Addr, netip.Prefix{}, netip.Addr{})
	err = errors.Join(err, a.setTableEntry(n, cur), a.store.UpdateEndpoint(cur.api()))
	a.log.Error(msg, "name", cur.Name, "network", n.name(), "addr", l.Addr, "server", l.Server,
		"last_error", l.Err, "refused", l.Refused, "next_try", max(nextTry(l, time.Now()), 0), "err", err)
	n.mu.Lock()
	n.set(en, cur)
	n.mu.Unlock()
	a.shimRoutesIfMoved(n, before, usableAddrs(cur)) // the address is out of the index
}

// keepAll starts keeping the lease of each of n's ready endpoints.
func (a *Engine) keepAll(n *network) {
	n.mu.Lock()
	var ens []*entry
	for _, en := range n.eps {
		if en.ep.State == Ready && (en.ep.Lease != nil || en.ep.Lease6 != nil) {
			ens = append(ens, en)
		} else if en.ep.State == Ready {
			a.seekLease(n, en, 0) // a Docker endpoint without one (dhcphandoff.go)
		}
	}
	n.mu.Unlock()
	for _, en := range ens {
		a.keep(n, en)
	}
}

// checkLeases reports the endpoints of DHCP network n (eps are n's) whose
// lease expired or whose renewal is failing (doctor, GET /v1/check).
func checkLeases(n *network, eps []endpoint) []string {
	var out []string
	now := time.Now()
	for _, e := range eps {
		for _, v6 := range []bool{false, true} {
			l, proto := *e.lease(v6), protoName(v6)
			switch {
			case e.State != Ready || v6 && !n.dhcp6():
			case l == nil:
				out = append(out, fmt.Sprintf("network %s: endpoint %s has no %s lease", n.name(), e.Name, proto))
			case l.State == dhcp.Expired && l.Refused > 0:
				out = append(out, fmt.Sprintf("network %s: endpoint %s: %s lease of %s taken off: the server refused it (%s); asking for a new one",
					n.name(), e.Name, proto, l.Addr, l.Err))
			case l.State == dhcp.Expired || l.StateAt(now) == dhcp.Expired:
				out = append(out, fmt.Sprintf("network %s: endpoint %s: %s lease of %s expired at %s; no server answered (%s)",
					n.name(), e.Name, proto, l.Addr, l.Expiry.Format(time.RFC3339), l.Err))
			case l.Err != "":
				out = append(out, fmt.Sprintf("network %s: endpoint %s: %s lease of %s not renewed (%s), expires at %s",
					n.name(), e.Name, proto, l.Addr, l.Err, l.Expiry.Format(time.RFC3339)))
			}
		}
	}
	return out
}

// leaseCounts counts n's ready endpoints by the state of their lease
// (with v6, their DHCPv6 lease; "none": no lease yet); nil unless n is a
// DHCP network (with v6, with IPv6). Caller holds n.mu.
func (n *network) leaseCounts(v6 bool) map[string]int {
	if !n.DHCP || v6 && !n.IPv6 {
		return nil
	}
	out := map[string]int{"none": 0}
	for _, st := range dhcp.States() {
		out[st.String()] = 0
	}
	for _, en := range n.eps {
		switch l := *en.ep.lease(v6); {
		case en.ep.State != Ready:
		case l == nil:
			out["none"]++
		default:
			out[l.API().State]++
		}
	}
	return out
}
