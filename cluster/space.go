package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/mvlan/mvlan/ipam"
)

// Space is a cluster network's addresses on this host, a Pool per subnet,
// as the engine's IPAM backend: its ipam.Space-like methods do no I/O
// (the engine calls them under its network's lock); Prepare, called
// before that lock is taken, does what needs etcd.
type Space struct {
	c       *Client
	nw      Network
	pools   []*Pool
	subnets []netip.Prefix
	// exhausted counts the attaches Prepare refused for want of a block.
	exhausted atomic.Uint64
}

// OpenSpace opens the pools of network nw with their local files under
// dir/ID (made if absent), blocks of the default size. No etcd request is
// made.
func (c *Client) OpenSpace(nw Network, cfgs []ipam.PoolConfig, dir string) (*Space, error) {
	if err := CheckID(nw.ID); err != nil {
		return nil, fmt.Errorf("cluster network %s: %w", nw.Name, err)
	}
	dir = filepath.Join(dir, nw.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Space{c: c, nw: nw}
	for i, cfg := range cfgs {
		p, err := c.OpenPool(nw, cfg, 0, filepath.Join(dir, fmt.Sprintf("pool%d.json", i)))
		if err != nil {
			return nil, fmt.Errorf("cluster network %s: %w", nw.Name, err)
		}
		s.pools = append(s.pools, p)
		s.subnets = append(s.subnets, p.cfg.Subnet)
	}
	return s, nil
}

func (s *Space) find(a netip.Addr) *Pool {
	for _, p := range s.pools {
		if p.cfg.Subnet.Contains(a) {
			return p
		}
	}
	return nil
}

// Prepare makes the next Request of want (or, want invalid, the next
// Allocate of the family) answerable without I/O: it claims want in etcd
// or leases a block with a free address. Errors of etcd wrap
// ErrUnreachable and name the cluster.
func (s *Space) Prepare(ctx context.Context, v6 bool, want netip.Addr) error {
	if want.IsValid() {
		if p := s.find(want); p != nil {
			return p.Claim(ctx, want)
		}
		return nil // Request says it is outside
	}
	var errs []error
	full := true
	for _, p := range s.pools {
		if p.cfg.Subnet.Addr().Is6() != v6 {
			continue
		}
		err := p.Reserve(ctx)
		if err == nil {
			return nil // another pool may be full: the attach is not refused
		}
		errs = append(errs, err)
		full = full && errors.Is(err, ipam.ErrExhausted)
	}
	if len(errs) > 0 && full {
		s.exhausted.Add(1)
	}
	return errors.Join(errs...)
}

// Sync gives the claims released on this host back to etcd.
func (s *Space) Sync(ctx context.Context) {
	for _, p := range s.pools {
		p.Sync(ctx)
	}
}

// Abandon gives back a claim Prepare made that no Request took.
func (s *Space) Abandon(addr netip.Addr) {
	if p := s.find(addr); p != nil {
		p.Abandon(addr)
	}
}

// HasFamily reports whether the network has a pool of IPv6 (v6) or IPv4.
func (s *Space) HasFamily(v6 bool) bool {
	for _, p := range s.pools {
		if p.cfg.Subnet.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}

// Allocate hands out a free address of a block this host holds; it fails
// wrapping ipam.ErrExhausted when none has one (Prepare leases one), and
// with the network's failure (Failed) when it has one.
func (s *Space) Allocate(v6 bool, owner string) (netip.Prefix, error) {
	if err := s.Failed(); err != nil {
		return netip.Prefix{}, err
	}
	for _, p := range s.pools {
		if p.cfg.Subnet.Addr().Is6() != v6 {
			continue
		}
		if a, ok := p.TakeFree(owner); ok {
			return a, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: no free address in the blocks this host holds", ipam.ErrExhausted)
}

// Request holds addr for owner if it is in a block this host holds or
// this host claimed it (Prepare).
func (s *Space) Request(addr netip.Addr, owner string) (netip.Prefix, error) {
	p := s.find(addr.WithZone(""))
	if p == nil {
		return netip.Prefix{}, &ipam.OutsideError{Addr: addr, Subnets: s.subnets}
	}
	return p.Take(addr, owner)
}

// Release frees addr on this host.
func (s *Space) Release(addr netip.Addr) {
	if p := s.find(addr.WithZone("")); p != nil {
		p.Release(addr)
	}
}

// Owner returns who holds addr on this host.
func (s *Space) Owner(addr netip.Addr) (string, bool) {
	if p := s.find(addr.WithZone("")); p != nil {
		return p.Owner(addr)
	}
	return "", false
}

// Held returns the addresses this host's endpoints hold.
func (s *Space) Held() []ipam.Held {
	var out []ipam.Held
	for _, p := range s.pools {
		out = append(out, p.Held()...)
	}
	return out
}

// Load replaces the held addresses, pool by pool; on error nothing of
// the failing pool changes.
func (s *Space) Load(held []ipam.Held) error { return s.perPool(held, (*Pool).Load) }

// TryLoad reports whether Load would take held (alone), changing
// nothing, here or in etcd.
func (s *Space) TryLoad(held []ipam.Held) error { return s.perPool(held, (*Pool).TryLoad) }

// perPool splits held by pool and gives each pool its part (none: an
// empty one), in the order of s.pools, until fn fails.
func (s *Space) perPool(held []ipam.Held, fn func(*Pool, []ipam.Held) error) error {
	per := make(map[*Pool][]ipam.Held, len(s.pools))
	for _, h := range held {
		p := s.find(h.Addr)
		if p == nil {
			return fmt.Errorf("load endpoint %q: %w", h.Owner, &ipam.OutsideError{Addr: h.Addr, Subnets: s.subnets})
		}
		per[p] = append(per[p], h)
	}
	for _, p := range s.pools {
		if err := fn(p, per[p]); err != nil {
			return err
		}
	}
	return nil
}

// Usage counts, per pool, the addresses this host's endpoints hold and
// the free ones of the blocks it holds (not of the whole cluster).
func (s *Space) Usage() []ipam.Usage {
	out := make([]ipam.Usage, len(s.pools))
	for i, p := range s.pools {
		held := uint64(len(p.Held()))
		u := ipam.Usage{Subnet: p.cfg.Subnet, Range: p.cfg.IPRange, Used: held, UsedInRange: held}
		p.mu.Lock()
		for _, sp := range p.blocks {
			for _, bu := range sp.Usage() {
				u.FreeInRange += bu.FreeInRange
			}
		}
		p.mu.Unlock()
		u.Free = u.FreeInRange
		out[i] = u
	}
	return out
}

// BlockCount is how many blocks this host holds, all pools together.
func (s *Space) BlockCount() int {
	n := 0
	for _, p := range s.pools {
		n += len(p.Blocks())
	}
	return n
}

// Exhausted is how many attaches Prepare refused because every pool of
// their family had every block held and none of this host's with a free
// address.
func (s *Space) Exhausted() uint64 { return s.exhausted.Load() }

// Pools returns the configuration, gateways filled in.
func (s *Space) Pools() []ipam.PoolConfig {
	out := make([]ipam.PoolConfig, len(s.pools))
	for i, p := range s.pools {
		out[i] = p.cfg
	}
	return out
}

// Reclaim gives back the blocks and claims of dead hosts of which no
// address answers probe (Pool.Reclaim), pool by pool.
func (s *Space) Reclaim(ctx context.Context, probe Prober) (int, error) {
	n := 0
	for _, p := range s.pools {
		k, err := p.Reclaim(ctx, probe)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Verify checks the blocks and claims the pools' files hold against etcd
// (Pool.verify): those etcd does not have as this host's are dropped. A
// network created or joined here calls it before it hands out any
// address, since a file may be left of an earlier time on this host.
// Errors of etcd wrap ErrUnreachable and name the cluster.
func (s *Space) Verify(ctx context.Context) error {
	for _, p := range s.pools {
		if err := p.verify(ctx); err != nil {
			return fmt.Errorf("check the blocks of network %s against etcd: %w", p.net, err)
		}
	}
	return nil
}

// Failed returns why the network hands out no cluster address on this
// host, for good: its definition is gone from etcd (ErrNetworkGone), or
// another installation has this host's identity (ErrIdentityClash); nil
// when it does.
func (s *Space) Failed() error {
	if err := s.c.halted(); err != nil {
		return err
	}
	return s.c.Gone(s.nw.ID)
}

// Check looks up the network's definition in etcd (Client.CheckNetwork):
// ErrNetworkGone, and Failed from then on, when it is gone.
func (s *Space) Check(ctx context.Context) error { return s.c.CheckNetwork(ctx, s.nw) }

// Close stops checking the space's blocks (its network is gone here).
func (s *Space) Close() {
	for _, p := range s.pools {
		p.Close()
	}
}

// Reopen undoes Close after a leave etcd did not take whole (Pool.Reopen).
func (s *Space) Reopen() {
	for _, p := range s.pools {
		p.Reopen()
	}
}

// SetAside keeps addr from being handed out here (Pool.SetAside); without
// I/O, under the network's lock.
func (s *Space) SetAside(addr netip.Addr) bool {
	if p := s.find(addr.WithZone("")); p != nil {
		return p.SetAside(addr.WithZone(""))
	}
	return false
}
