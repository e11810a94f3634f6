package engine

import (
	"net/netip"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
)

// trustLinks limits the addresses of the endpoint links --recover found
// to what may be their endpoints': a container may have added any
// address to its link. A stored endpoint whose link is found keeps its
// stored addresses (fixed at the attach). A DHCP network's endpoint (its
// lease may have moved since the snapshot) and a link the state does not
// have keep, of their link's addresses, the first of each family that
// their network's pools would give (in a subnet, not the gateway's, not
// reserved) and that no such stored endpoint holds; a link the state does
// not have is on the network of its first such address.
func trustLinks(found map[string]kernelEndpoint, eps []api.Endpoint, nets []api.Network) {
	byID := make(map[string]api.Endpoint, len(eps))
	for _, e := range eps {
		byID[e.ID] = e
	}
	netOf := make(map[string]api.Network, len(nets))
	for _, n := range nets {
		netOf[n.ID] = n
	}
	fixed := func(id string) (api.Endpoint, bool) {
		e, ok := byID[id]
		return e, ok && netOf[e.NetworkID].IPAMDriver != api.IPAMDHCP
	}
	held := map[netip.Addr]bool{}
	for id, k := range found {
		if e, ok := fixed(id); ok {
			k.addrs = e.Addrs
			found[id] = k
			for _, p := range e.Addrs {
				held[p.Addr()] = true
			}
		}
	}
	spaces := scratchSpaces(nets)
	for id, k := range found {
		if _, ok := fixed(id); ok {
			continue
		}
		on := nets
		if e, ok := byID[id]; ok {
			on = []api.Network{netOf[e.NetworkID]}
		}
		k.addrs = givable(on, spaces, k.addrs, held)
		found[id] = k
	}
}

// scratchSpaces are empty address spaces of the networks' pools, to ask
// whether a pool would give an address; nil for one that has none.
func scratchSpaces(nets []api.Network) map[string]*ipam.Space {
	out := make(map[string]*ipam.Space, len(nets))
	for _, n := range nets {
		if len(n.Pools) == 0 {
			continue
		}
		if s, err := ipam.New(fromAPIPools(n.Pools), ipam.Options{}); err == nil {
			out[n.ID] = s
		}
	}
	return out
}

// givable keeps of addrs the first of each family that the pools of one
// of nets would give and that held does not have; the first address one
// of them would give picks the network. A lone network without pools (a
// DHCP network that has not learned its subnet) takes any.
func givable(nets []api.Network, spaces map[string]*ipam.Space, addrs []netip.Prefix, held map[netip.Addr]bool) []netip.Prefix {
	gives := func(n api.Network, a netip.Addr) bool {
		s := spaces[n.ID]
		if s == nil {
			return len(nets) == 1
		}
		return s.Load([]ipam.Held{{Addr: a, Owner: "recover"}}) == nil
	}
	on := -1
	var out []netip.Prefix
	var done [2]bool // v4, v6
	for _, p := range addrs {
		a := p.Addr()
		if held[a] || done[b2i(a.Is6())] {
			continue
		}
		for i := 0; on < 0 && i < len(nets); i++ {
			if gives(nets[i], a) {
				on = i
			}
		}
		if on >= 0 && gives(nets[on], a) {
			done[b2i(a.Is6())] = true
			out = append(out, p)
		}
	}
	return out
}
