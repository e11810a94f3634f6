package ipam

import (
	"fmt"
	"maps"
	"math/bits"
	"net/netip"
	"slices"
)

// Usage returns the counts of each pool, in pool order.
func (s *Space) Usage() []Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Usage, len(s.pools))
	for i, p := range s.pools {
		out[i] = p.usage()
	}
	return out
}

func (p *pool) usage() Usage {
	total := size(p.cfg.Subnet) - float64(len(p.reserved))
	window := float64(p.hi-p.lo) + 1 - float64(p.resWindow)
	return Usage{
		Subnet:      p.cfg.Subnet,
		Range:       p.cfg.IPRange,
		Used:        p.used,
		UsedInRange: p.usedWindow,
		Free:        total - float64(p.used),
		FreeInRange: window - float64(p.usedWindow),
	}
}

// Held returns every held address with its owner, pool by pool, in
// address order: what Load takes back.
func (s *Space) Held() []Held {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Held
	for _, p := range s.pools {
		out = p.appendHeld(out)
	}
	return out
}

func (p *pool) appendHeld(out []Held) []Held {
	var low, high []Held // extra addresses below and above the bitset
	base := toAddr(p.base, p.v6)
	for _, a := range slices.SortedFunc(maps.Keys(p.extra), netip.Addr.Compare) {
		h := Held{Addr: a, Owner: p.extra[a]}
		if a.Less(base) {
			low = append(low, h)
		} else {
			high = append(high, h)
		}
	}
	out = append(out, low...)
	for _, key := range slices.Sorted(maps.Keys(p.set.words)) {
		w := p.set.words[key]
		for m := w.held &^ w.res; m != 0; m &= m - 1 {
			bit := uint(bits.TrailingZeros64(m))
			off := key<<6 | uint64(bit)
			out = append(out, Held{Addr: toAddr(p.base.add64(off), p.v6), Owner: w.owner(bit)})
		}
	}
	return append(out, high...)
}

// Load replaces every held address with held, e.g. from the endpoints
// persisted by the agent. On error (an address held twice, outside every
// subnet or reserved) the Space is left unchanged. The serial cursor
// restarts at the start of each range (see ResumeAfter).
func (s *Space) Load(held []Held) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh, err := s.loaded(held)
	if err != nil {
		return err
	}
	s.pools = fresh
	return nil
}

// ResumeAfter, with Options.Serial, reloads the space (as Load(Held())
// would) and continues allocation in each pool after the highest of addrs
// in its ip-range (or subnet), as if the space had handed out every
// address up to it: the next Allocate takes the first free address above
// it, the free ones below it come in the next lap. A pool with none of
// addrs in its range starts at the range start. An agent passes what was
// handed out before it restarted (the addresses held, the highest
// released), so that serial allocation stays serial. Without
// Options.Serial it does nothing.
func (s *Space) ResumeAfter(addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opt.Serial {
		return
	}
	var held []Held
	for _, p := range s.pools {
		held = p.appendHeld(held)
	}
	fresh, err := s.loaded(held)
	if err != nil {
		return // cannot be: held is what the pools hold
	}
	for _, p := range fresh {
		if last, ok := p.lastIn(addrs); ok {
			p.resume(last)
		}
	}
	s.pools = fresh
}

// TryLoad reports whether Load would take held (alone), changing nothing.
func (s *Space) TryLoad(held []Held) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.loaded(held)
	return err
}

// loaded is the pools Load makes of held. Caller holds s.mu.
func (s *Space) loaded(held []Held) ([]*pool, error) {
	fresh := make([]*pool, len(s.pools))
	for i, p := range s.pools {
		fresh[i] = newPool(p.cfg, s.opt.Serial)
	}
	var p *pool
	for _, h := range held {
		a := h.Addr.WithZone("")
		if p == nil || !p.cfg.Subnet.Contains(a) {
			p = findIn(fresh, a)
		}
		if p == nil {
			return nil, fmt.Errorf("load endpoint %q: %w", h.Owner, &OutsideError{Addr: a, Subnets: s.subnets})
		}
		if err := p.claim(a, h.Owner); err != nil {
			return nil, fmt.Errorf("load endpoint %q: %w", h.Owner, err)
		}
	}
	for _, p := range fresh {
		p.settle()
	}
	return fresh, nil
}

func findIn(pools []*pool, a netip.Addr) *pool {
	for _, p := range pools {
		if p.cfg.Subnet.Contains(a) {
			return p
		}
	}
	return nil
}
