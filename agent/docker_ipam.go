package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/plugin"
)

// Docker's IPAM flow: RequestPool for each --subnet (with its --ip-range
// and the --ipam-opt options), RequestAddress for each gateway and
// --aux-address, CreateNetwork (which gets the pools, gateways and aux
// addresses, but not the ip-ranges: those come from the pools requested),
// then RequestAddress per endpoint. Pools, gateways and aux-addresses of a
// network being created live in dockerState until CreateNetwork; from then
// on, the network's address space answers.

// DockerRequestPool registers --subnet (and --ip-range) for a network
// being created. Its ID is "SUBNET" or "SUBNET,IP-RANGE".
func (a *Agent) DockerRequestPool(_ context.Context, r plugin.PoolRequest) (string, error) {
	if !r.Pool.IsValid() {
		return "", invalid(fmt.Errorf("mvlan takes addresses from the subnets of the physical network and picks none itself: give --subnet (e.g. --subnet=172.16.86.0/24)"))
	}
	if _, err := ipam.New([]ipam.PoolConfig{{Subnet: r.Pool, IPRange: r.SubPool}}, ipam.Options{}); err != nil {
		return "", invalid(err)
	}
	var opts []string
	for _, k := range sortedKeys(r.Options) {
		o := k + "=" + r.Options[k]
		if o != "allocation=serial" && o != "allocation=lowest" {
			return "", invalid(fmt.Errorf("unknown --ipam-opt %q; use allocation=lowest (default) or allocation=serial", o))
		}
		opts = append(opts, o)
	}
	id := poolID(r.Pool, r.SubPool)
	a.mu.Lock()
	defer a.mu.Unlock()
	if pp := a.docker.pools[id]; pp != nil {
		pp.refs++
		return id, nil
	}
	for _, n := range a.nets {
		for _, q := range n.Pools {
			if q.Subnet.Overlaps(r.Pool) {
				return "", conflict(fmt.Errorf("subnet %s overlaps subnet %s of network %s; pick a subnet that does not overlap", r.Pool, q.Subnet, n.Name))
			}
		}
	}
	for _, pp := range a.docker.pools {
		if pp.subnet.Overlaps(r.Pool) {
			return "", conflict(fmt.Errorf("subnet %s overlaps subnet %s of a network being created", r.Pool, pp.subnet))
		}
	}
	a.docker.pools[id] = &dockerPool{subnet: r.Pool, ipRange: r.SubPool, ipamOpts: opts, refs: 1}
	return id, nil
}

func poolID(subnet, ipRange netip.Prefix) string {
	if ipRange.IsValid() {
		return subnet.String() + "," + ipRange.String()
	}
	return subnet.String()
}

func parsePoolID(id string) (subnet, ipRange netip.Prefix, err error) {
	s, r, hasRange := strings.Cut(id, ",")
	if subnet, err = netip.ParsePrefix(s); err == nil && hasRange {
		ipRange, err = netip.ParsePrefix(r)
	}
	if err != nil {
		return subnet, ipRange, invalid(fmt.Errorf("pool ID %q is not one of mvlan's (SUBNET[,IP-RANGE])", id))
	}
	return subnet, ipRange, nil
}

// poolOf returns the pending pool of subnet, if any. Caller holds mu.
func (d *dockerState) poolOf(subnet netip.Prefix) *dockerPool {
	for _, pp := range d.pools {
		if pp.subnet == subnet {
			return pp
		}
	}
	return nil
}

// DockerReleasePool drops a pool no network took (Docker's rollback of a
// failed network create). A network's pool goes with the network.
func (a *Agent) DockerReleasePool(_ context.Context, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if pp := a.docker.pools[id]; pp != nil {
		if pp.refs--; pp.refs <= 0 {
			delete(a.docker.pools, id)
		}
	}
	return nil
}

// DockerRequestAddress answers the gateway and aux-address requests of a
// network being created, and hands out endpoint addresses from the
// network's address space: the requested one, or the next free one of the
// network (the pools of the family in order, as mvlan run does).
func (a *Agent) DockerRequestAddress(_ context.Context, r plugin.AddressRequest) (netip.Prefix, error) {
	subnet, ipRange, err := parsePoolID(r.PoolID)
	if err != nil {
		return netip.Prefix{}, err
	}
	want := r.Address.Unmap()
	a.mu.Lock()
	defer a.mu.Unlock()
	if n, pool := a.networkOf(subnet); n != nil {
		if r.Gateway {
			if want.IsValid() && want != pool.Gateway {
				return netip.Prefix{}, conflict(fmt.Errorf("network %s has gateway %s for %s, not %s", n.Name, pool.Gateway, subnet, want))
			}
			return netip.PrefixFrom(pool.Gateway, subnet.Bits()), nil
		}
		var p netip.Prefix
		if want.IsValid() {
			p, err = n.space.Request(want, dockerOwner)
		} else {
			p, err = n.space.Allocate(subnet.Addr().Is6(), dockerOwner)
		}
		if err != nil {
			return p, ipamError(err)
		}
		a.docker.held[p.Addr()] = true
		return p, nil
	}
	if a.docker.pools[r.PoolID] == nil {
		// Requested before an agent restart: its ID tells what it was.
		a.docker.pools[r.PoolID] = &dockerPool{subnet: subnet, ipRange: ipRange, refs: 1}
	}
	switch {
	case r.Gateway && !want.IsValid():
		return netip.PrefixFrom(ipam.InferGateway(subnet), subnet.Bits()), nil
	case want.IsValid() && !subnet.Contains(want):
		return netip.Prefix{}, invalid(fmt.Errorf("address %s is outside subnet %s", want, subnet))
	case want.IsValid():
		// A gateway or an --aux-address: CreateNetwork gets them and
		// the network's address space reserves them.
		return netip.PrefixFrom(want, subnet.Bits()), nil
	}
	return netip.Prefix{}, invalid(fmt.Errorf("pool %s belongs to no mvlan network: mvlan's IPAM serves mvlan's networks (docker network create -d mvlan --ipam-driver mvlan ...)", subnet))
}

// networkOf finds the network with subnet and that pool. Caller holds mu.
func (a *Agent) networkOf(subnet netip.Prefix) (*network, api.Pool) {
	for _, n := range a.nets {
		for _, p := range n.Pools {
			if p.Subnet == subnet {
				return n, p
			}
		}
	}
	return nil, api.Pool{}
}

// DockerReleaseAddress frees an address DockerRequestAddress gave, unless
// an endpoint has it (a late release). Gateways, aux-addresses and
// addresses given before an agent restart are not in dockerState.held:
// nothing to do.
func (a *Agent) DockerReleaseAddress(_ context.Context, _ string, addr netip.Addr) error {
	addr = addr.Unmap()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.docker.held[addr] {
		return nil
	}
	delete(a.docker.held, addr)
	inUse, err := a.addrsInUse()
	if err != nil {
		return err
	}
	if _, ok := inUse[addr]; ok {
		return nil
	}
	for _, n := range a.nets {
		for _, p := range n.Pools {
			if p.Subnet.Contains(addr) {
				n.space.Release(addr)
				return nil
			}
		}
	}
	return nil
}
