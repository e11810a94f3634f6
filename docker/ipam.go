package docker

// Docker's IPAM flow: RequestPool for each --subnet (with its --ip-range
// and the --ipam-opt options), RequestAddress for each gateway and
// --aux-address, CreateNetwork (which gets the pools, gateways and aux
// addresses, but not the ip-ranges: those come from the pools requested),
// then RequestAddress per endpoint. Pools, gateways and aux-addresses of a
// network being created live in the Driver until CreateNetwork; from then
// on, the network's address space answers.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/plugin"
)

// DockerRequestPool registers --subnet (and --ip-range) for a network
// being created. Its ID is "SUBNET" or "SUBNET,IP-RANGE".
func (d *Driver) DockerRequestPool(_ context.Context, r plugin.PoolRequest) (string, error) {
	switch {
	case !r.Pool.IsValid() && r.V6:
		return "", engine.Invalid(fmt.Errorf("--ipv6 needs an IPv6 --subnet: mvlan takes addresses from the subnets of the physical network and picks none itself (e.g. --subnet=2001:db8:86::/64)"))
	case !r.Pool.IsValid():
		return "", engine.Invalid(fmt.Errorf("mvlan takes addresses from the subnets of the physical network and picks none itself: give --subnet (e.g. --subnet=172.16.86.0/24)"))
	}
	// The gateway is not known yet (Docker asks for it next): whether the
	// ip-range has room besides it is checked at CreateNetwork.
	if _, err := ipam.New([]ipam.PoolConfig{{Subnet: r.Pool, IPRange: r.SubPool}}, ipam.Options{}); err != nil && !errors.Is(err, ipam.ErrNoRoom) {
		return "", engine.Invalid(err)
	}
	var opts []string
	for _, k := range sortedKeys(r.Options) {
		o := k + "=" + r.Options[k]
		if o != "allocation=serial" && o != "allocation=lowest" {
			return "", engine.Invalid(fmt.Errorf("unknown --ipam-opt %q; use allocation=lowest (default) or allocation=serial", o))
		}
		opts = append(opts, o)
	}
	id := poolID(r.Pool, r.SubPool)
	nets, err := d.eng.Networks()
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if pp := d.pools[id]; pp != nil {
		pp.refs++
		return id, nil
	}
	for _, n := range nets {
		for _, q := range n.Pools {
			if q.Subnet.Overlaps(r.Pool) {
				return "", engine.Conflict(fmt.Errorf("subnet %s overlaps subnet %s of network %s; pick a subnet that does not overlap", r.Pool, q.Subnet, n.Name))
			}
		}
	}
	for _, pp := range d.pools {
		if pp.subnet.Overlaps(r.Pool) {
			return "", engine.Conflict(fmt.Errorf("subnet %s overlaps subnet %s of a network being created (a docker network create under way; one dockerd gave up half way holds it until the agent restarts)", r.Pool, pp.subnet))
		}
	}
	d.pools[id] = &pool{subnet: r.Pool, ipRange: r.SubPool, ipamOpts: opts, refs: 1}
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
		return subnet, ipRange, engine.Invalid(fmt.Errorf("pool ID %q is not one of mvlan's (SUBNET[,IP-RANGE])", id))
	}
	return subnet, ipRange, nil
}

// poolOf returns the pending pool of subnet, if any. Caller holds mu.
func (d *Driver) poolOf(subnet netip.Prefix) *pool {
	for _, pp := range d.pools {
		if pp.subnet == subnet {
			return pp
		}
	}
	return nil
}

// DockerReleasePool drops a pool no network took (Docker's rollback of a
// failed network create). A network's pool goes with the network.
func (d *Driver) DockerReleasePool(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pp := d.pools[id]; pp != nil {
		if pp.refs--; pp.refs <= 0 {
			delete(d.pools, id)
		}
	}
	return nil
}

// DockerRequestAddress answers the gateway and aux-address requests of a
// network being created, and hands out endpoint addresses from the
// network's address space: the requested one, or the next free one of the
// network (the pools of the family in order, as mvlan run does).
func (d *Driver) DockerRequestAddress(_ context.Context, r plugin.AddressRequest) (netip.Prefix, error) {
	subnet, ipRange, err := parsePoolID(r.PoolID)
	if err != nil {
		return netip.Prefix{}, err
	}
	want := r.Address.Unmap()
	n, np, err := d.networkOf(subnet)
	if err != nil {
		return netip.Prefix{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n != nil {
		if r.Gateway {
			if want.IsValid() && want != np.Gateway {
				return netip.Prefix{}, engine.Conflict(fmt.Errorf("network %s has gateway %s for %s, not %s", n.Name, np.Gateway, subnet, want))
			}
			return netip.PrefixFrom(np.Gateway, subnet.Bits()), nil
		}
		p, err := d.eng.Reserve(n.ID, want, subnet.Addr().Is6(), dockerOwner)
		if err != nil {
			return p, ipam.HintTaken(err) // docker run --ip
		}
		d.held[p.Addr()] = true
		return p, nil
	}
	if d.pools[r.PoolID] == nil {
		// Requested before an agent restart: its ID tells what it was.
		d.pools[r.PoolID] = &pool{subnet: subnet, ipRange: ipRange, refs: 1}
	}
	switch {
	case r.Gateway && !want.IsValid():
		return netip.PrefixFrom(ipam.InferGateway(subnet), subnet.Bits()), nil
	case want.IsValid() && !subnet.Contains(want):
		return netip.Prefix{}, engine.Invalid(fmt.Errorf("address %s is outside subnet %s", want, subnet))
	case want.IsValid():
		// A gateway or an --aux-address: CreateNetwork gets them and
		// the network's address space reserves them.
		return netip.PrefixFrom(want, subnet.Bits()), nil
	}
	return netip.Prefix{}, engine.Invalid(fmt.Errorf("pool %s belongs to no mvlan network: mvlan's IPAM serves mvlan's networks (docker network create -d mvlan --ipam-driver mvlan ...)", subnet))
}

// networkOf finds the network with subnet, and that pool; nil if none.
func (d *Driver) networkOf(subnet netip.Prefix) (*api.Network, api.Pool, error) {
	nets, err := d.eng.Networks()
	if err != nil {
		return nil, api.Pool{}, err
	}
	for _, n := range nets {
		for _, p := range n.Pools {
			if p.Subnet == subnet {
				return &n, p, nil
			}
		}
	}
	return nil, api.Pool{}, nil
}

// DockerReleaseAddress frees an address DockerRequestAddress gave, unless
// an endpoint has it (a late release). Gateways, aux-addresses and
// addresses given before an agent restart are not in held: nothing to do.
func (d *Driver) DockerReleaseAddress(_ context.Context, _ string, addr netip.Addr) error {
	addr = addr.Unmap()
	nets, err := d.eng.Networks()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.held[addr] {
		return nil
	}
	delete(d.held, addr)
	for _, c := range d.created {
		for _, p := range c.addrs {
			if p.Addr() == addr {
				return nil
			}
		}
	}
	for _, n := range nets {
		for _, p := range n.Pools {
			if p.Subnet.Contains(addr) {
				_, err := d.eng.Release(n.ID, addr)
				return err
			}
		}
	}
	return nil
}
