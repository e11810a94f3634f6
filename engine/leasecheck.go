package engine

import (
	"net/netip"
	"slices"

	"github.com/mvlan/mvlan/api"
)

// leaseRefuse is the DHCP clients' Link.Refuse for e on n: a server on
// the wire (any host there can answer) must not give e an address that is
// the host shim's, a pool's gateway, aux, network or broadcast address,
// or another endpoint's on any network of this host (the datapath knows
// an address as one endpoint's host-wide: e would take its frames and its
// neighbours' trust). It looks when asked, so a renewal sees the
// endpoints of the day.
func (a *Engine) leaseRefuse(n *network, e endpoint) func(netip.Addr) string {
	return func(addr netip.Addr) string {
		addr = addr.WithZone("")
		if slices.Contains(n.shimAddrs(), addr) {
			return "the address of the network's host shim"
		}
		n.mu.Lock()
		pools := n.Pools // a DHCP network's learned one included (not in its space)
		n.mu.Unlock()
		if why := reservedIn(pools, addr); why != "" {
			return why
		}
		if name := a.addrHolder(addr, e.ID); name != "" {
			return "the address of endpoint " + name
		}
		return ""
	}
}

// reservedIn says which of pools' own addresses addr is, "" if none.
func reservedIn(pools []api.Pool, addr netip.Addr) string {
	for _, p := range pools {
		switch {
		case p.Gateway == addr:
			return "the network's gateway"
		case isAux(p, addr):
			return "an auxiliary address of the network"
		case !p.Subnet.Contains(addr) || !addr.Is4() || p.Subnet.Bits() >= 31:
		case addr == p.Subnet.Masked().Addr():
			return "the network address of " + p.Subnet.String()
		case addr == lastAddr(p.Subnet):
			return "the broadcast address of " + p.Subnet.String()
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
		n.mu.Unlock()
		if en != nil && en.ep.ID != id {
			return en.ep.Name
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

// lastAddr is p's highest address (IPv4: its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
