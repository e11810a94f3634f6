package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mvlan/mvlan/dhcp"
)

// A crash between the server's DHCPACK and the "ready" record (or between
// the "removing" record and the DHCPRELEASE) would leave the lease bound
// on the server until it expires, for an endpoint that is undone on start.
// The "creating" record already names that lease: the client-id derives
// from the network's identity and the endpoint's name, and the MAC is
// stored. So on start, before such an endpoint is undone, settleLease asks
// the server on the endpoint's link for that client's lease (a server
// answers with the binding it holds for the client-id, or makes one) and
// gives it straight back; a "removing" record has its lease already.

// settleTimeout bounds the exchange of one endpoint on start.
const settleTimeout = 5 * time.Second

// settleLease gives back the lease the server may hold for e, an endpoint
// of DHCP network n caught creating or removing by a restart, through e's
// link (found by its mark) if it is still there. It returns e with the
// datapath keys of that link, for the undo that follows.
func (a *Engine) settleLease(ctx context.Context, n *network, e endpoint) endpoint {
	if !n.DHCP || e.State == Ready || !a.isOurNetns(e) {
		return e
	}
	give4 := a.heldLease(n, e)
	if !give4 && !n.dhcp6() {
		return e
	}
	k, err := a.kernelEndpointIn(e.Netns, e.ID)
	if err != nil {
		if e.Lease != nil && give4 {
			a.log.Warn("DHCP lease not given back: the endpoint's link is gone; the server keeps it until it expires",
				"name", e.Name, "network", n.name(), "addr", e.Lease.Addr, "err", err)
		}
		return e // no link, no lease asked for from it
	}
	cookie, err := a.ns.Cookie(e.Netns)
	if err != nil {
		a.log.Warn("DHCP lease not settled", "name", e.Name, "network", n.name(), "err", err)
		return e
	}
	e.NetnsCookie, e.Ifindex = cookie, k.link.Index
	ctx4, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if give4 {
		if err := a.giveBack(ctx4, n, &e); err != nil {
			a.log.Warn("DHCP lease of an endpoint caught "+e.State.String()+" not given back; the server may keep it until it expires",
				"name", e.Name, "network", n.name(), "mac", e.MAC.String(), "err", err)
		}
	}
	if n.dhcp6() {
		a.giveBack6(ctx, n, e)
	}
	return e
}

// heldLease reports whether the server may hold a DHCPv4 lease of e: not
// one the agent took off as expired, nor one that ran out while the agent
// was down (the server has freed the address, another host may have it:
// putting it back to send the release from it would announce it for us).
func (a *Engine) heldLease(n *network, e endpoint) bool {
	switch {
	case e.Lease == nil:
		return true // a crash before the record had it: ask the server
	case e.Lease.State == dhcp.Expired:
		return false
	case e.Lease.StateAt(time.Now()) == dhcp.Expired:
		a.log.Info("DHCP lease of an endpoint caught "+e.State.String()+" expired while the agent was down: nothing to give back",
			"name", e.Name, "network", n.name(), "addr", e.Lease.Addr, "expiry", e.Lease.Expiry)
		return false
	}
	return true
}

// giveBack takes e's lease (its record's, else the server's binding for
// e's client-id), puts it on e's link and in the datapath, as the
// DHCPRELEASE is sent from the leased address, and sends the release.
func (a *Engine) giveBack(ctx context.Context, n *network, e *endpoint) error {
	l := e.Lease
	if l == nil {
		link := a.dhcpLink(n, *e)
		link.Probing = a.probingHeld(n, *e)
		got, err := dhcp.Acquire(ctx, link)
		if err != nil {
			return fmt.Errorf("ask for the lease: %w", err)
		}
		l = &got
	}
	// The address may be off the link (a crash after rm silenced it):
	// put it on whatever the record says.
	cur := *e
	cur.Lease = nil
	if err := a.applyLease(n, &cur, *l); err != nil && !errors.As(err, new(*resolvError)) {
		return err
	}
	*e = cur
	if err := dhcp.Release(ctx, a.dhcpLink(n, *e), *l); err != nil {
		return fmt.Errorf("DHCPRELEASE: %w", err)
	}
	a.log.Info("DHCP lease given back: its endpoint was caught "+e.State.String()+" by a restart",
		"name", e.Name, "network", n.name(), "addr", l.Addr, "server", l.Server)
	return nil
}
