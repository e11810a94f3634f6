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

// keep starts keeping en's lease.
func (a *Engine) keep(n *network, en *entry) {
	k := &a.leases
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	if k.ctx == nil {
		k.ctx, k.cancel = context.WithCancel(context.Background())
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		a.keepLease(k.ctx, n, en)
	}()
}

// pollGone bounds a keeper's sleep, so that it notices its endpoint's
// removal.
const pollGone = time.Second

// keepLease renews en's lease at T1 (and again, halving the wait, until
// T2), rebinds from T2 to the expiry, and then takes the address off and
// asks for a new lease every retryExpired: RFC 2131 4.4.5. It returns
// once en is gone or ctx is done.
func (a *Engine) keepLease(ctx context.Context, n *network, en *entry) {
	for {
		n.mu.Lock()
		e, gone := en.ep, en.gone
		n.mu.Unlock()
		if gone || e.State != Ready || e.Lease == nil {
			return
		}
		if wait := nextTry(*e.Lease, time.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(wait, pollGone)):
			}
			continue
		}
		a.renewOnce(ctx, n, en, e)
	}
}

// nextTry is how long to wait before the next renewal of l.
func nextTry(l dhcp.Lease, now time.Time) time.Duration {
	if l.State == dhcp.Expired {
		return retryExpired - now.Sub(l.LastTry)
	}
	switch l.StateAt(now) {
	case dhcp.Bound:
		return l.Renew.Sub(now)
	case dhcp.Renewing, dhcp.Rebinding:
		if l.Err == "" || l.State == dhcp.Bound {
			return 0
		}
		next := l.Rebind
		if !now.Before(l.Rebind) {
			next = l.Expiry
		}
		return max(2*time.Second, next.Sub(l.LastTry)/2) - now.Sub(l.LastTry)
	}
	return 0 // it just expired
}

// renewOnce asks once; the exchange runs without en's lock, the result is
// applied and stored with it.
func (a *Engine) renewOnce(ctx context.Context, n *network, en *entry, e endpoint) {
	now := time.Now()
	var l dhcp.Lease
	var err error
	ctx, cancel := context.WithTimeout(ctx, acquireTimeout)
	defer cancel()
	switch {
	case e.Lease.State == dhcp.Expired:
		l, err = dhcp.Acquire(ctx, a.dhcpLink(n, e))
	case e.Lease.StateAt(now) == dhcp.Expired:
		a.expire(n, en, "DHCP lease expired: the address is off the endpoint until a server answers", false)
		return
	default:
		l, err = dhcp.Renew(ctx, a.dhcpLink(n, e), *e.Lease)
	}
	if errors.Is(err, dhcp.ErrNAK) {
		// The server says the lease is no longer the endpoint's (RFC 2131
		// 4.4.5: back to INIT): off the link at once, a new one asked for.
		a.expire(n, en, "DHCP server refused the renewal (DHCPNAK): the address is off the endpoint, asking for a new lease", true)
		return
	}
	en.busy.Lock()
	defer en.busy.Unlock()
	cur, ok := n.current(en)
	if !ok || cur.Lease == nil {
		return
	}
	if err == nil {
		err = a.applyLease(n, &cur, l)
	}
	if err == nil {
		err = a.store.UpdateEndpoint(cur.api())
	}
	if err != nil {
		failed := *cur.Lease
		failed.Err, failed.LastTry = err.Error(), time.Now()
		if failed.State != dhcp.Expired {
			failed.State = failed.StateAt(failed.LastTry)
		}
		cur.Lease = &failed
		a.log.Warn("DHCP renewal failed", "name", cur.Name, "network", n.name(), "state", failed.State, "expiry", failed.Expiry, "err", err)
	} else {
		a.log.Info("DHCP lease renewed", "name", cur.Name, "network", n.name(), "addr", l.Addr, "expiry", l.Expiry)
	}
	n.mu.Lock()
	n.set(en, cur)
	n.mu.Unlock()
}

// expire takes an expired (or refused) lease's address off en's link (it
// is no longer the endpoint's to use) and reports it with msg; the keeper
// goes on asking, at once with now, else after retryExpired.
func (a *Engine) expire(n *network, en *entry, msg string, now bool) {
	en.busy.Lock()
	defer en.busy.Unlock()
	cur, ok := n.current(en)
	if !ok || cur.Lease == nil {
		return
	}
	l := *cur.Lease
	err := link.SetLeased(cur.Netns, cur.Ifindex, l.Addr, netip.Prefix{}, netip.Addr{})
	l.State, l.LastTry = dhcp.Expired, time.Now()
	if now {
		l.LastTry = time.Time{}
	}
	cur.Lease = &l
	a.log.Error(msg, "name", cur.Name, "network", n.name(),
		"addr", l.Addr, "server", l.Server, "last_error", l.Err, "err", errors.Join(err, a.store.UpdateEndpoint(cur.api())))
	n.mu.Lock()
	n.set(en, cur)
	n.mu.Unlock()
}

// keepAll starts keeping the lease of each of n's ready endpoints.
func (a *Engine) keepAll(n *network) {
	n.mu.Lock()
	var ens []*entry
	for _, en := range n.eps {
		if en.ep.State == Ready && en.ep.Lease != nil {
			ens = append(ens, en)
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
		switch {
		case e.State != Ready:
		case e.Lease == nil:
			out = append(out, fmt.Sprintf("network %s: endpoint %s has no DHCP lease", n.name(), e.Name))
		case e.Lease.State == dhcp.Expired || e.Lease.StateAt(now) == dhcp.Expired:
			out = append(out, fmt.Sprintf("network %s: endpoint %s: DHCP lease of %s expired at %s; no server answered (%s)",
				n.name(), e.Name, e.Lease.Addr, e.Lease.Expiry.Format(time.RFC3339), e.Lease.Err))
		case e.Lease.Err != "":
			out = append(out, fmt.Sprintf("network %s: endpoint %s: DHCP lease of %s not renewed (%s), expires at %s",
				n.name(), e.Name, e.Lease.Addr, e.Lease.Err, e.Lease.Expiry.Format(time.RFC3339)))
		}
	}
	return out
}

// leaseCounts counts n's ready endpoints by lease state ("none": no lease
// yet); nil unless n is a DHCP network. Caller holds n.mu.
func (n *network) leaseCounts() map[string]int {
	if !n.DHCP {
		return nil
	}
	out := map[string]int{"none": 0}
	for _, st := range dhcp.States() {
		out[st.String()] = 0
	}
	for _, en := range n.eps {
		switch l := en.ep.Lease; {
		case en.ep.State != Ready:
		case l == nil:
			out["none"]++
		default:
			out[l.API().State]++
		}
	}
	return out
}
