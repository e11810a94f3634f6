package engine

import (
	"net/netip"
	"slices"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/ipam"
)

// leaseRefuse is the DHCP clients' Link.Refuse for e on n: a server on
// the wire (any host there can answer) must not give e an address that is
// the host shim's, this host's own on n's parent (e's ARP probe of it does
// not go up the parent), the router of a lease of n's endpoints (the real one,
// as the servers name it: a DHCP network's pool gateway may be no more
// than its --subnet's first address), a pool's network or broadcast
// address, or another endpoint's on any network of this host (the
// datapath knows an address as one endpoint's host-wide: e would take its
// frames and its neighbours' trust). It looks when asked, so a renewal
// sees the endpoints of the day.
func (a *Engine) leaseRefuse(n *network, e endpoint) func(netip.Addr) string {
	return func(addr netip.Addr) string {
		addr = addr.WithZone("")
		if slices.Contains(n.shimAddrs(), addr) {
			return "the address of the network's host shim"
		}
		n.mu.Lock()
		pools, routed, parent := n.Pools, leaseRouter(n, addr), n.Parent
		n.mu.Unlock()
		if routed != "" {
			return "the router of endpoint " + routed + "'s lease"
		}
		own, err := a.host.Addrs(parent)
		if err != nil {
			a.log.Warn("DHCP lease check: the parent's addresses are unknown; an offer of one is not refused", "network", n.name(), "parent", parent, "err", err)
		}
		if slices.Contains(own, addr) {
			return "an address of this host on " + parent // its probe would not hear the host
		}
		if why := reservedIn(pools, addr); why != "" {
			return why
		}
		if name := a.addrHolder(addr, e.ID); name != "" {
			return "the address of endpoint " + name
		}
		return ""
	}
}

// leaseRouter names an endpoint of n whose live lease has addr as its
// router, "" if none. Caller holds n.mu.
func leaseRouter(n *network, addr netip.Addr) string {
	for _, en := range n.eps {
		if l := en.ep.Lease; l != nil && l.State != dhcp.Expired && l.Router == addr {
			return en.ep.Name
		}
	}
	return ""
}

// reservedIn says which of pools' own addresses addr is (not the gateway:
// a DHCP network's is its --subnet's first address unless learned), ""
// if none.
func reservedIn(pools []api.Pool, addr netip.Addr) string {
	for _, p := range pools {
		if isAux(p, addr) {
			return "an auxiliary address of the network"
		}
		if kind := ipam.ReservedKind(p.Subnet, addr); kind != "" && p.Subnet.Contains(addr) {
			return kind + " of " + p.Subnet.String()
		}
	}
	return ""
}

// addrHolder names the endpoint other than id that has addr, on any
// network; "" if none.
func (a *Engine) addrHolder(addr netip.Addr, id string) string {
	for _, n := range a.networkList() {
		n.mu.Lock()
		en := n.byAddr[addr]
		var ep endpoint
		if en != nil {
			ep = en.ep
		}
		n.mu.Unlock()
		// The index has no expired lease's address (epindex.go); checked
		// again, as the datapath's row has none either.
		if en != nil && ep.ID != id && slices.ContainsFunc(usableAddrs(ep), func(p netip.Prefix) bool { return p.Addr() == addr }) {
			return ep.Name
		}
	}
	return ""
}

// isAux reports whether addr is one of p's aux addresses.
func isAux(p api.Pool, addr netip.Addr) bool {
	for _, x := range p.Aux {
		if x == addr {
			return true
		}
	}
	return false
}
