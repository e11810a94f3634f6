package docker

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/plugin"
)

// DockerCreateEndpoint checks the endpoint's addresses and picks its MAC;
// the endpoint is stored at Join, when its sandbox is known.
func (d *Driver) DockerCreateEndpoint(_ context.Context, de plugin.Endpoint) (_ string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.eng.Network(de.NetworkID)
	if engine.KindOf(err) == engine.KindNotFound {
		return "", engine.NotFound(fmt.Errorf("network %s is not one of this agent's (mvlan network ls); was it removed with mvlan network rm?", shortID(de.NetworkID)))
	} else if err != nil {
		return "", err
	}
	if c, ok := d.created[de.ID]; ok {
		if c.repeats(de) {
			return c.mac.String(), nil // dockerd asks again: its answer was lost
		}
		return "", engine.Conflict(fmt.Errorf("endpoint %s exists already, with other addresses or MAC", shortID(de.ID)))
	}
	// The MAC first: it also tells whether the network takes endpoints.
	mac, err := d.eng.EndpointMAC(de.NetworkID, de.MAC)
	if err != nil {
		return "", err
	}
	if _, err := d.eng.Endpoint(de.ID); err == nil {
		return "", engine.Conflict(fmt.Errorf("endpoint %s exists already", shortID(de.ID)))
	}
	if len(de.Addrs) == 0 && n.IPAMDriver != api.IPAMDHCP {
		return "", engine.Invalid(fmt.Errorf("endpoint %s has no address from Docker; mvlan networks need one (--subnet)", shortID(de.ID)))
	}
	var claimed []netip.Addr
	defer func() {
		if err != nil {
			for _, addr := range claimed {
				_, _ = d.eng.Release(de.NetworkID, addr)
			}
		}
	}()
	addrs := make([]netip.Prefix, 0, len(de.Addrs))
	for _, p := range de.Addrs {
		addr := p.Addr().Unmap()
		claim, err := d.checkAddr(de.NetworkID, addr)
		if err != nil {
			return "", err
		}
		if claim {
			// Not handed out by this agent's IPAM (Docker's own IPAM,
			// or an agent restart in between): take it now.
			if _, err := d.eng.Reserve(de.NetworkID, addr, addr.Is6(), dockerOwner); err != nil {
				return "", err
			}
			claimed = append(claimed, addr)
		}
		addrs = append(addrs, netip.PrefixFrom(addr, p.Bits()))
	}
	for _, c := range d.created {
		if c.network == de.NetworkID && c.mac.String() == mac.String() {
			return "", engine.Conflict(fmt.Errorf("MAC %s is already used on network %s", mac, shortID(de.NetworkID)))
		}
	}
	d.created[de.ID] = endpoint{network: de.NetworkID, addrs: addrs, mac: mac}
	return mac.String(), nil
}

// repeats reports whether de asks for c again: the same network and
// addresses, and its MAC or none.
func (c endpoint) repeats(de plugin.Endpoint) bool {
	if c.network != de.NetworkID || len(c.addrs) != len(de.Addrs) || de.MAC != "" && de.MAC != c.mac.String() {
		return false
	}
	for i, p := range de.Addrs {
		if netip.PrefixFrom(p.Addr().Unmap(), p.Bits()) != c.addrs[i] {
			return false
		}
	}
	return true
}

// checkAddr refuses an address another endpoint has or someone else holds;
// it reports whether the address is free and must be taken. Caller holds mu.
func (d *Driver) checkAddr(netID string, addr netip.Addr) (claim bool, err error) {
	for id, c := range d.created {
		for _, p := range c.addrs {
			if p.Addr() == addr {
				return false, engine.Conflict(fmt.Errorf("address %s is Docker endpoint %s's", addr, shortID(id)))
			}
		}
	}
	h, held, err := d.eng.Holder(netID, addr)
	switch {
	case err != nil:
		return false, err
	case h.Endpoint != "":
		return false, engine.Conflict(fmt.Errorf("address %s is endpoint %s's", addr, h.Endpoint))
	case held && !d.held[addr]:
		return false, engine.Conflict(fmt.Errorf("address %s is held by %s", addr, ipam.DescribeOwner(h.Owner)))
	}
	return !held, nil
}

func shortID(id string) string { return id[:min(12, len(id))] }

// DockerJoin stores the endpoint ("creating", in the sandbox at key), then
// creates its link in the host namespace for Docker to move, and watches
// for the move.
func (d *Driver) DockerJoin(ctx context.Context, networkID, endpointID, key string) (plugin.Join, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if j, ok := d.joined[endpointID]; ok && j.network == networkID && j.key == key {
		if _, err := d.eng.Endpoint(endpointID); err == nil {
			return j.answer, nil // dockerd asks again: its answer was lost
		}
		delete(d.joined, endpointID) // removed since (mvlan rm)
	}
	c, ok := d.created[endpointID]
	if !ok {
		if _, err := d.eng.Endpoint(endpointID); err == nil {
			return plugin.Join{}, engine.Conflict(fmt.Errorf("endpoint %s has joined already", shortID(endpointID)))
		}
		return plugin.Join{}, engine.NotFound(fmt.Errorf("endpoint %s is unknown: it was created before the agent restarted; start the container again", shortID(endpointID)))
	}
	if networkID != c.network {
		return plugin.Join{}, engine.Invalid(fmt.Errorf("endpoint %s is on network %s, not %s", shortID(endpointID), shortID(c.network), shortID(networkID)))
	}
	hl, err := d.eng.CreateHandoff(ctx, engine.Handoff{ID: endpointID, NetworkID: c.network, Name: filepath.Base(key),
		Netns: key, MAC: c.mac, Addrs: c.addrs, Owner: dockerOwner})
	if err != nil {
		return plugin.Join{}, err
	}
	delete(d.created, endpointID)
	d.watchHandoff(endpointID)
	life := d.ctx
	d.spawn(func() { d.nameNetwork(life, networkID) }) // dockerd did not answer before, or renamed it
	j := plugin.Join{SrcName: hl.Name}
	for _, gw := range hl.Gateways {
		if gw.Is4() {
			j.Gateway = gw
		} else {
			j.GatewayIPv6 = gw
		}
	}
	d.joined[endpointID] = joinedAs{network: networkID, key: key, answer: j}
	return j, nil
}

// joinedAs is a Join's request and answer.
type joinedAs struct {
	network, key string
	answer       plugin.Join
}

// DockerLeave marks the endpoint "removing" and detaches it from the
// datapath; Docker then moves its link back to the host namespace.
func (d *Driver) DockerLeave(ctx context.Context, _, endpointID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopWatch(endpointID)
	delete(d.joined, endpointID)
	return d.eng.Leave(ctx, endpointID)
}

// DockerDeleteEndpoint removes the endpoint's link (in the host namespace,
// where Docker put it back, or still in the sandbox) and its record. Its
// addresses that Docker's RequestAddress gave stay held until Docker's
// ReleaseAddress; others are released now.
func (d *Driver) DockerDeleteEndpoint(ctx context.Context, _, endpointID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopWatch(endpointID)
	delete(d.joined, endpointID)
	if c, ok := d.created[endpointID]; ok {
		delete(d.created, endpointID)
		for _, p := range c.addrs {
			if !d.held[p.Addr()] {
				_, _ = d.eng.Release(c.network, p.Addr())
			}
		}
		return nil
	}
	return d.eng.RemoveHandoff(ctx, endpointID, dockerOwner, func(addr netip.Addr) bool { return d.held[addr] })
}
