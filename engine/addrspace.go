package engine

import (
	"net/netip"

	"github.com/mvlan/mvlan/ipam"
)

// addrSpace is a network's address space, the engine's IPAM backend:
// *ipam.Space for a network of this host alone. Its methods are called
// with the network's mu held and must not wait for I/O; a backend that
// needs the network (a cluster's store, a DHCP server) does that before
// the lock is taken and keeps what it got for these calls to hand out.
type addrSpace interface {
	HasFamily(v6 bool) bool
	Allocate(v6 bool, owner string) (netip.Prefix, error)
	Request(addr netip.Addr, owner string) (netip.Prefix, error)
	Release(addr netip.Addr)
	Owner(addr netip.Addr) (string, bool)
	Held() []ipam.Held
	Load(held []ipam.Held) error
	TryLoad(held []ipam.Held) error // whether Load would take held, changing nothing
	Usage() []ipam.Usage
	Pools() []ipam.PoolConfig
}

var _ addrSpace = (*ipam.Space)(nil)
