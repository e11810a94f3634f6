package ipam

import (
	"fmt"
	"net/netip"
	"slices"
)

// model is the obviously-correct reference the fuzzer checks Space
// against: small pools whose addresses are listed one by one.
type model struct {
	pools  []*modelPool
	held   map[netip.Addr]string
	serial bool
}

type modelPool struct {
	subnet   netip.Prefix
	v6       bool
	window   []netip.Addr // the ip-range (or subnet), in order
	reserved map[netip.Addr]bool
	cursor   int // serial: index into window to continue from
}

func newModelPool(c PoolConfig) *modelPool {
	p := &modelPool{subnet: c.Subnet, v6: c.Subnet.Addr().Is6(), reserved: map[netip.Addr]bool{}}
	rng := c.IPRange
	if !rng.IsValid() {
		rng = c.Subnet
	}
	for a := rng.Addr(); a.IsValid() && rng.Contains(a); a = a.Next() {
		p.window = append(p.window, a)
	}
	hb := hostBits(c.Subnet)
	if hb >= 2 {
		p.reserved[c.Subnet.Addr()] = true
		if !p.v6 {
			p.reserved[lastAddr(c.Subnet)] = true
		}
	}
	gw := c.Gateway
	if !gw.IsValid() {
		gw = c.Subnet.Addr()
		if hb >= 2 {
			gw = gw.Next()
		}
	}
	p.reserved[gw] = true
	for _, a := range c.Aux {
		p.reserved[a] = true
	}
	return p
}

func (m *model) free(a netip.Addr, p *modelPool) bool {
	_, held := m.held[a]
	return !held && !p.reserved[a]
}

// allocate returns what Space.Allocate must return.
func (m *model) allocate(v6 bool, owner string) (netip.Addr, error) {
	found := false
	for _, p := range m.pools {
		if p.v6 != v6 {
			continue
		}
		found = true
		if i, ok := m.pick(p); ok {
			m.held[p.window[i]] = owner
			p.cursor = (i + 1) % len(p.window)
			return p.window[i], nil
		}
	}
	if !found {
		return netip.Addr{}, ErrNoFamily
	}
	return netip.Addr{}, ErrExhausted
}

func (m *model) pick(p *modelPool) (int, bool) {
	start := 0
	if m.serial {
		start = p.cursor
	}
	for k := range p.window {
		i := (start + k) % len(p.window)
		if m.free(p.window[i], p) {
			return i, true
		}
	}
	return 0, false
}

func (m *model) find(a netip.Addr) *modelPool {
	for _, p := range m.pools {
		if p.subnet.Contains(a) {
			return p
		}
	}
	return nil
}

// request returns the sentinel Space.Request must fail with, or nil.
func (m *model) request(a netip.Addr, owner string) error {
	p := m.find(a)
	switch {
	case p == nil:
		return ErrOutside
	case p.reserved[a]:
		return ErrReserved
	}
	if o, ok := m.held[a]; ok {
		return fmt.Errorf("%w by %s", ErrTaken, o)
	}
	m.held[a] = owner
	return nil
}

func (m *model) release(a netip.Addr) { delete(m.held, a) }

// reload models Load: the holdings stay, serial cursors restart.
func (m *model) reload() {
	for _, p := range m.pools {
		p.cursor = 0
	}
}

// resume models ResumeAfter: reload, then each serial cursor after the
// last address of its window that addrs has.
func (m *model) resume(addrs []netip.Addr) {
	if !m.serial {
		return
	}
	m.reload()
	for _, p := range m.pools {
		for i, a := range p.window {
			if slices.Contains(addrs, a) {
				p.cursor = (i + 1) % len(p.window)
			}
		}
	}
}
