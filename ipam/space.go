// Package ipam manages the addresses of one mvlan network: its pools
// (subnets with a gateway, an optional ip-range and named aux-address
// reservations) in IPv4 and IPv6, the way Docker's default IPAM does for
// the macvlan driver, made exact.
//
// Never handed out: IPv4 network and broadcast addresses (except in /31 and
// /32), the IPv6 subnet-router anycast address (except in /127 and /128),
// gateways and aux-addresses. Allocate hands out the lowest free address of
// the ip-range (or subnet) of the first pool of the family that has one,
// or, with Options.Serial, continues after the last one handed out and
// wraps. Request takes any free, non-reserved address of a subnet.
//
// The package does no I/O: a Space's state is its configuration plus the
// addresses held by persisted endpoints, which the agent feeds back with
// Load on start. Memory grows with the addresses held, not with the size
// of the subnets; allocation is O(1) amortized and O(log n) worst case.
package ipam

import (
	"maps"
	"net/netip"
	"sync"
)

// PoolConfig is one subnet of a network.
type PoolConfig struct {
	Subnet  netip.Prefix          // masked; host bits set is an error
	Gateway netip.Addr            // zero: the first usable address (see InferGateway)
	IPRange netip.Prefix          // zero: the whole subnet; else inside Subnet
	Aux     map[string]netip.Addr // named reservations inside Subnet
}

// Options tune a Space.
type Options struct {
	// Serial continues after the last address handed out and wraps,
	// instead of handing out the lowest free address, so that a released
	// address is not reused at once.
	Serial bool
}

// Held is an address held by an endpoint, as persisted by the agent.
type Held struct {
	Addr netip.Addr
	// Owner names who holds it: an endpoint's name, one word, or, for
	// any other holder, a phrase that says what it is ("the host shim").
	// Messages show it as DescribeOwner does.
	Owner string
}

// Usage counts the addresses of one pool. Reserved addresses count in
// neither Used nor Free.
type Usage struct {
	Subnet      netip.Prefix
	Range       netip.Prefix // zero when the pool has no ip-range
	Used        uint64       // held by endpoints
	UsedInRange uint64       // of which in the ip-range (all when none)
	Free        float64      // assignable with Request, anywhere in the subnet
	FreeInRange float64      // assignable with Allocate (for ranges above 2^64: within the first 2^64)
}

// Space is the address space of one network: its pools, both families.
// It is safe for concurrent use.
type Space struct {
	mu      sync.Mutex
	opt     Options
	pools   []*pool
	subnets []netip.Prefix
}

// New validates pools (each as Pair would, plus disjoint subnets), infers
// missing gateways and returns an empty Space.
func New(pools []PoolConfig, opt Options) (*Space, error) {
	cfgs := make([]PoolConfig, len(pools))
	for i, c := range pools {
		c.Aux = maps.Clone(c.Aux)
		cfgs[i] = c
	}
	if err := validate(cfgs); err != nil {
		return nil, err
	}
	s := &Space{opt: opt}
	for _, c := range cfgs {
		s.pools = append(s.pools, newPool(c, opt.Serial))
		s.subnets = append(s.subnets, c.Subnet)
	}
	return s, nil
}

// Pools returns the configuration in force, inferred gateways filled in.
func (s *Space) Pools() []PoolConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PoolConfig, len(s.pools))
	for i, p := range s.pools {
		out[i] = p.cfg
		out[i].Aux = maps.Clone(p.cfg.Aux)
	}
	return out
}

// HasFamily reports whether the network has a pool of IPv6 (v6) or IPv4.
func (s *Space) HasFamily(v6 bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pools {
		if p.v6 == v6 {
			return true
		}
	}
	return false
}

func (s *Space) find(a netip.Addr) *pool { return findIn(s.pools, a) }

// Allocate hands out an address of the family for owner, with the subnet's
// prefix length (e.g. 172.16.86.2/24). It fails with *ExhaustedError when
// every pool of the family is full and with ErrNoFamily when there is none.
func (s *Space) Allocate(v6 bool, owner string) (netip.Prefix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pools {
		if p.v6 != v6 {
			continue
		}
		if off, ok := p.allocate(owner); ok {
			return p.prefixAt(off), nil
		}
	}
	return netip.Prefix{}, s.exhausted(v6)
}

func (s *Space) exhausted(v6 bool) error {
	var e *ExhaustedError
	for _, p := range s.pools {
		if p.v6 != v6 {
			continue
		}
		x := ExhaustedError{Pool: p.cfg.Subnet, Range: p.cfg.IPRange}
		if e == nil {
			e = &x
		} else {
			e.Others = append(e.Others, x)
		}
	}
	if e == nil {
		return &noFamilyError{v6: v6}
	}
	return e
}

// Request holds exactly addr for owner: any free, non-reserved address of a
// subnet, inside or outside the ip-range. It fails with *OutsideError,
// *ReservedError or *TakenError.
func (s *Space) Request(addr netip.Addr, owner string) (netip.Prefix, error) {
	addr = addr.WithZone("")
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.find(addr)
	if p == nil {
		return netip.Prefix{}, &OutsideError{Addr: addr, Subnets: s.subnets}
	}
	if err := p.claim(addr, owner); err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(addr, p.cfg.Subnet.Bits()), nil
}

// Release frees addr. Releasing a free, reserved or unknown address does
// nothing.
func (s *Space) Release(addr netip.Addr) {
	addr = addr.WithZone("")
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.find(addr); p != nil {
		p.releaseAddr(addr)
	}
}

// Owner returns the owner of a held address; false when addr is free,
// reserved or outside the network.
func (s *Space) Owner(addr netip.Addr) (string, bool) {
	addr = addr.WithZone("")
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.find(addr); p != nil {
		return p.owner(addr)
	}
	return "", false
}
