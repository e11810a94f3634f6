package engine

import "context"

// Docker's endpoints on a DHCP network (docker network create
// --ipam-driver null): Docker asks no address of anyone, moves the link
// into the container's namespace and starts the container; once the link
// is there (FinishHandoff), the agent leases its address from inside that
// namespace as for any endpoint, keeps the lease, and gives it back when
// the container leaves (Leave), while the address is still on the link.
// Docker does not know the address (docker inspect shows none); mvlan ps
// does. IPv4 only: a network with --ipv6 has no DHCPv6 for Docker yet.

// leaseHandoff leases e's address once its link is in its sandbox. A
// failure is logged and leaves e ready without a lease (doctor reports
// it): the container runs already. Caller holds e's busy lock.
func (a *Engine) leaseHandoff(ctx context.Context, n *network, e *endpoint) {
	if !n.DHCP {
		return
	}
	if err := a.acquireLease(ctx, n, e); err != nil {
		a.log.Error("Docker endpoint has no address", "name", e.Name, "network", n.name(), "err", err)
	}
}
