package engine

import (
	"slices"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/ipam"
)

// A DHCP network created without --subnet takes its IPv4 subnet from its
// first lease: the lease's address and mask, and its router as the
// gateway. From then on the network is as if created with that --subnet:
// inspect shows it, other networks' subnets may not overlap it, and
// offers outside it are refused (another server on the wire, or a
// renumbered one, is an error to see, not a network to follow).

// pool4 is n's first IPv4 pool, if any.
func (n *network) pool4() (api.Pool, bool) { return n.poolOf(false) }

// poolOf is n's pool of the family (IPv6 with v6), if it has one.
func (n *network) poolOf(v6 bool) (api.Pool, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := slices.IndexFunc(n.Pools, func(p api.Pool) bool { return p.Subnet.Addr().Is6() == v6 })
	if i < 0 {
		return api.Pool{}, false
	}
	return n.Pools[i], true
}

// learnSubnet makes l's subnet and router n's IPv4 pool when n has none.
// The network's record is written under netOps, like every other change
// of it; the caller holds an endpoint's busy lock, which comes after
// netOps, so it only tries the lock: a lease that comes while a network
// operation runs leaves the learning to the next one.
func (a *Engine) learnSubnet(n *network, l dhcp.Lease) {
	if _, ok := n.pool4(); ok {
		return
	}
	if !a.netOps.TryLock() {
		a.log.Debug("subnet not learned now: a network operation is running", "network", n.name())
		return
	}
	defer a.netOps.Unlock()
	p := api.Pool{Subnet: l.Addr.Masked(), Gateway: l.Router}
	if _, err := ipam.New(fromAPIPools([]api.Pool{p}), ipam.Options{}); err != nil {
		a.log.Warn("subnet of the first DHCP lease not learned: --subnet would refuse it", "network", n.name(), "subnet", p.Subnet, "err", err)
		return
	}
	for _, o := range a.networkList() {
		for _, q := range o.Pools { // written under netOps only
			if o != n && q.Subnet.Overlaps(p.Subnet) {
				a.log.Warn("subnet of the first DHCP lease not learned: it overlaps another network's",
					"network", n.name(), "subnet", p.Subnet, "other", o.name(), "other_subnet", q.Subnet)
				return
			}
		}
	}
	n.mu.Lock()
	rec := n.stored()
	n.mu.Unlock()
	if slices.ContainsFunc(rec.Pools, func(q api.Pool) bool { return q.Subnet.Addr().Is4() }) {
		return // learned meanwhile
	}
	rec.Pools = append(slices.Clone(rec.Pools), p)
	if err := a.store.UpdateNetwork(rec); err != nil {
		a.log.Warn("subnet of the first DHCP lease not stored", "network", n.name(), "subnet", p.Subnet, "err", err)
		return
	}
	n.mu.Lock()
	n.Pools = rec.Pools
	n.mu.Unlock()
	a.log.Info("network subnet learned from its first DHCP lease", "network", n.name(), "subnet", p.Subnet, "gateway", p.Gateway, "server", l.Server)
}
