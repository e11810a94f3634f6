package engine

// Addresses reserved ahead of their endpoint, for front ends whose
// protocol hands out addresses before the endpoint exists (Docker's IPAM):
// reserve, release, and who holds an address. An address an endpoint has
// is never released from outside.

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/mvlan/mvlan/api"
)

// Holder is who holds an address of a network's space.
type Holder struct {
	Owner    string // the name IPAM holds it under
	Endpoint string // the endpoint that has it; "" when none does
}

// networkOrGone returns network netID, or NotFound.
func (a *Engine) networkOrGone(netID string) (*network, error) {
	if n := a.networkByID(netID); n != nil {
		return n, nil
	}
	return nil, notFound(fmt.Errorf("network %s is gone", shortID(netID)))
}

// Holder reports who holds addr in network netID's space, if anyone.
func (a *Engine) Holder(netID string, addr netip.Addr) (Holder, bool, error) {
	n, err := a.networkOrGone(netID)
	if err != nil {
		return Holder{}, false, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	owner, held := n.space.Owner(addr)
	h := Holder{Owner: owner}
	if en := n.byAddr[addr]; en != nil {
		h.Endpoint = en.ep.Name
	}
	return h, held || h.Endpoint != "", nil
}

// Reserve holds an address of network netID for owner, ahead of the
// endpoint that will have it: want, or the next free one of the family.
func (a *Engine) Reserve(netID string, want netip.Addr, v6 bool, owner string) (netip.Prefix, error) {
	n, err := a.networkOrGone(netID)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p, ok := n.space.(preparer); ok {
		if err := p.Prepare(context.Background(), v6, want); err != nil {
			return netip.Prefix{}, clusterError(err)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var p netip.Prefix
	if want.IsValid() {
		p, err = n.space.Request(want, owner)
	} else {
		p, err = n.space.Allocate(v6, owner)
	}
	if err != nil {
		return p, ipamError(err)
	}
	return p, nil
}

// Release frees a reserved address of network netID unless an endpoint
// has it; it reports whether it did.
func (a *Engine) Release(netID string, addr netip.Addr) (bool, error) {
	n := a.networkByID(netID)
	if n == nil {
		return false, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byAddr[addr] != nil {
		return false, nil
	}
	n.space.Release(addr)
	return true, nil
}

// EndpointMAC is the MAC a new endpoint of network netID gets: want if
// valid and unused on the network, the parent's in passthru mode, else a
// random locally administered one. It refuses a network that cannot take
// endpoints now.
func (a *Engine) EndpointMAC(netID, want string) (net.HardwareAddr, error) {
	n, err := a.networkOrGone(netID)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	ok, status := n.ok(), n.health()
	n.mu.Unlock()
	if !ok {
		return nil, conflict(fmt.Errorf("network %s cannot take endpoints now: %s", n.name(), status))
	}
	mac, err := a.endpointMAC(n, want)
	if err != nil || want == "" {
		return mac, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.macInUse(mac); err != nil {
		return nil, err
	}
	if err := a.macOnHost(n, mac); err != nil {
		return nil, err
	}
	return mac, nil
}

// Endpoint returns the endpoint with ID id (NotFound if none).
func (a *Engine) Endpoint(id string) (api.Endpoint, error) {
	n, en := a.endpointByID(id)
	if en == nil {
		return api.Endpoint{}, notFound(fmt.Errorf("endpoint %s not found", shortID(id)))
	}
	e, _ := n.current(en)
	out := e.api()
	out.Network = n.name()
	return out, nil
}
