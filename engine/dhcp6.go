package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/link"
)

// A DHCP network with --ipv6 also leases each endpoint an IPv6 address
// from the DHCPv6 server on its wire (one IA_NA), after its IPv4 lease:
// the endpoint's Lease6, kept by its own keeper (keepLease with v6) and
// released on removal like the IPv4 one. Its identity is a DUID-UUID of
// the network and the container's name (dhcp.DUID6). The network's IPv6
// --subnet, when given, bounds the address and is its on-link prefix;
// without one the address is a /128. IPv6 routes come from router
// advertisements (-o ipv6_ra=accept), as DHCPv6 has no router option.

// dhcp6 reports whether n's endpoints lease IPv6 addresses.
func (n *network) dhcp6() bool { return n.DHCP && n.IPv6 }

// lease is e's DHCPv4 lease, or with v6 its DHCPv6 one, to read or set.
func (e *endpoint) lease(v6 bool) **dhcp.Lease {
	if v6 {
		return &e.Lease6
	}
	return &e.Lease
}

// dhcpLinkOf is e's link as the DHCP client of the family sees it.
func (a *Engine) dhcpLinkOf(n *network, e endpoint, v6 bool) dhcp.Link {
	if !v6 {
		return a.dhcpLink(n, e)
	}
	l := dhcpOn(n, e, a.clientIDOf(n, e, true))
	if p, ok := n.poolOf(true); ok {
		l.Subnet = p.Subnet
	}
	if e.Lease6 != nil {
		l.Want = e.Lease6.Addr.Addr()
	}
	l.Refuse = a.leaseRefuse(n, e)
	return l
}

// leaseFuncs are the DHCP exchanges of one family.
type leaseFuncs struct {
	acquire func(context.Context, dhcp.Link) (dhcp.Lease, error)
	renew   func(context.Context, dhcp.Link, dhcp.Lease) (dhcp.Lease, error)
	release func(context.Context, dhcp.Link, dhcp.Lease) error
}

func leaseFuncsOf(v6 bool) leaseFuncs {
	if v6 {
		return leaseFuncs{dhcp.Acquire6, dhcp.Renew6, dhcp.Release6}
	}
	return leaseFuncs{dhcp.Acquire, dhcp.Renew, dhcp.Release}
}

// acquireLease6 leases e's IPv6 address from the network's DHCPv6 server
// and puts it on e's link. Caller holds e's busy lock; e's link is up.
func (a *Engine) acquireLease6(ctx context.Context, n *network, e *endpoint) error {
	ctx, cancel := context.WithTimeout(ctx, acquireTimeout)
	defer cancel()
	l, err := dhcp.Acquire6(ctx, a.dhcpLinkOf(n, *e, true))
	if err != nil {
		return conflict(fmt.Errorf("network %s (--ipam-driver dhcp --ipv6): no IPv6 address for %s: %w", n.name(), e.Name, err))
	}
	if err := a.applyLease6(n, e, l); err != nil {
		return errors.Join(err, dhcp.Release6(context.WithoutCancel(ctx), a.dhcpLinkOf(n, *e, true), l))
	}
	a.log.Info("DHCPv6 lease", "name", e.Name, "network", n.name(), "addr", l.Addr, "expiry", l.Expiry)
	return nil
}

// applyLease6 makes l e's DHCPv6 lease: the datapath first, then the
// link, then resolv.conf, as applyLease. Caller holds e's busy lock.
func (a *Engine) applyLease6(n *network, e *endpoint, l dhcp.Lease) error {
	var old netip.Prefix // an expired lease's too (applyLease)
	fresh := e.Lease6 == nil || e.Lease6.State == dhcp.Expired
	if e.Lease6 != nil {
		old = e.Lease6.Addr
	}
	next := *e
	next.Addrs, next.Lease6 = withAddr(e.Addrs, l.Addr), &l
	if err := a.setTableEntry(n, next); err != nil {
		return err
	}
	if fresh || old != l.Addr {
		if err := link.SetLeased6(e.Netns, e.Ifindex, old, l.Addr); err != nil {
			return errors.Join(fmt.Errorf("put leased %s on %s: %w", l.Addr, e.Name, err), a.setTableEntry(n, *e))
		}
	}
	err := writeResolv(*e, resolvBefore(*e), *resolvLease(e.Lease, &l))
	next.resolvStale = err != nil
	*e = next
	return err
}

// resolvLease is what the resolv.conf of an endpoint with leases v4 and
// v6 (either may be nil) is made of: the IPv4 lease, with the DHCPv6
// lease's DNS servers after its own; nil when both are.
func resolvLease(v4, v6 *dhcp.Lease) *dhcp.Lease {
	if v4 == nil || v6 == nil {
		return cmp.Or(v4, v6)
	}
	l := *v4
	l.DNS = append(slices.Clone(v4.DNS), v6.DNS...)
	return &l
}

// withAddr is addrs with p in place of those of p's family (IPv4 first).
func withAddr(addrs []netip.Prefix, p netip.Prefix) []netip.Prefix {
	out := slices.DeleteFunc(slices.Clone(addrs), func(q netip.Prefix) bool { return q.Addr().Is6() == p.Addr().Is6() })
	out = append(out, p)
	slices.SortStableFunc(out, func(x, y netip.Prefix) int {
		if x.Addr().Is4() == y.Addr().Is4() {
			return 0
		}
		if x.Addr().Is4() {
			return -1
		}
		return 1
	})
	return out
}

// liveLeaseAddrs are the addresses of e's leases that are neither
// expired nor past their expiry at now (one that ran out while the agent
// was down, whose keeper has not seen it yet): what a re-made link gets.
func liveLeaseAddrs(e endpoint, now time.Time) []netip.Prefix {
	var out []netip.Prefix
	for _, l := range []*dhcp.Lease{e.Lease, e.Lease6} {
		if l != nil && l.State != dhcp.Expired && l.StateAt(now) != dhcp.Expired {
			out = append(out, l.Addr)
		}
	}
	return out
}

// usableAddrs are e's addresses but those of its expired leases, which are
// off its link and no longer its own (the record keeps them, for ps and
// to ask for them again): what the datapath lets e use and keeps other
// hosts from claiming.
func usableAddrs(e endpoint) []netip.Prefix {
	return slices.DeleteFunc(slices.Clone(e.Addrs), func(p netip.Prefix) bool {
		for _, l := range []*dhcp.Lease{e.Lease, e.Lease6} {
			if l != nil && l.State == dhcp.Expired && l.Addr == p {
				return true
			}
		}
		return false
	})
}

// releaseLease6 sends a DHCPv6 Release for e's lease (best effort).
func (a *Engine) releaseLease6(ctx context.Context, n *network, e endpoint) {
	if !n.DHCP || e.Lease6 == nil || e.Lease6.State == dhcp.Expired || e.Lease6.StateAt(time.Now()) == dhcp.Expired {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := dhcp.Release6(ctx, a.dhcpLinkOf(n, e, true), *e.Lease6); err != nil {
		a.log.Warn("DHCPv6 Release not answered; the server keeps the lease until it expires", "name", e.Name, "network", n.name(), "addr", e.Lease6.Addr, "err", err)
	}
}

// applyLeaseOf applies l as e's lease of its family.
func (a *Engine) applyLeaseOf(n *network, e *endpoint, l dhcp.Lease, v6 bool) error {
	if v6 {
		return a.applyLease6(n, e, l)
	}
	return a.applyLease(n, e, l)
}

// protoName names the family's protocol in logs.
func protoName(v6 bool) string {
	if v6 {
		return "DHCPv6"
	}
	return "DHCP"
}

// nakName is how the family's server refuses a renewal.
func nakName(v6 bool) string {
	if v6 {
		return "NoBinding, NotOnLink or its address withdrawn"
	}
	return "DHCPNAK"
}

// giveBack6 is giveBack for e's DHCPv6 lease (settleLease): its record's,
// else the server's binding for e's DUID, released from e's link-local
// address (the link is up: giveBack put the IPv4 lease on it).
func (a *Engine) giveBack6(ctx context.Context, n *network, e endpoint) {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	l := e.Lease6
	var err error
	if l == nil || l.State == dhcp.Expired {
		var got dhcp.Lease
		if got, err = dhcp.Acquire6(ctx, a.dhcpLinkOf(n, e, true)); err == nil {
			l = &got
		}
	}
	if err == nil {
		err = dhcp.Release6(ctx, a.dhcpLinkOf(n, e, true), *l)
	}
	if err != nil {
		a.log.Warn("DHCPv6 lease of an endpoint caught "+e.State.String()+" not given back; the server may keep it until it expires",
			"name", e.Name, "network", n.name(), "err", err)
		return
	}
	a.log.Info("DHCPv6 lease given back: its endpoint was caught "+e.State.String()+" by a restart",
		"name", e.Name, "network", n.name(), "addr", l.Addr)
}
