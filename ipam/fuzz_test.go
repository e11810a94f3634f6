package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
)

// feed hands out fuzz bytes, zeros once they run out.
type feed struct{ b []byte }

func (f *feed) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	x := f.b[0]
	f.b = f.b[1:]
	return x
}

// poolGen builds one random pool and tells whether New must accept it.
type poolGen struct {
	f     *feed
	valid bool
	bases map[string]bool
	nAux  int
}

func (g *poolGen) pool(i int) PoolConfig {
	flags := g.f.next()
	v6, big := flags&1 != 0, flags&2 != 0
	idx := i
	if flags&0x80 != 0 {
		idx = 0 // may collide with pool 0: overlap
	}
	var c PoolConfig
	switch {
	case big && v6:
		c.Subnet = pfx(fmt.Sprintf("fd01:%x::/48", idx))
	case big:
		c.Subnet = pfx(fmt.Sprintf("10.%d.0.0/16", 100+idx))
	case v6:
		c.Subnet = netip.PrefixFrom(addr(fmt.Sprintf("fd00:0:0:%x::", idx)), 128-int(flags>>2)%8)
	default:
		c.Subnet = netip.PrefixFrom(addr(fmt.Sprintf("10.0.%d.0", idx)), 32-int(flags>>2)%7)
	}
	if hostBits(c.Subnet) == 0 {
		g.valid = false // a single address: none left for a container
	}
	key := fmt.Sprint(v6, big, idx)
	if g.bases[key] {
		g.valid = false
	}
	g.bases[key] = true
	c.Gateway = g.gateway(c.Subnet)
	c.IPRange = g.ipRange(c.Subnet, big)
	c.Aux = g.aux(c.Subnet)
	if !roomIn(c) {
		g.valid = false // an ip-range with nothing to hand out
	}
	return c
}

// roomIn reports whether c's ip-range (if any) has an address that is
// not the network's, the broadcast, the gateway (given or inferred) or an
// aux address: each of a small range is tried.
func roomIn(c PoolConfig) bool {
	r := c.IPRange
	if !r.IsValid() || hostBits(r) > 8 {
		return true
	}
	gw := c.Gateway
	if !gw.IsValid() {
		gw = InferGateway(c.Subnet)
	}
	for a, n := r.Addr(), 0; n < 1<<hostBits(r); a, n = a.Next(), n+1 {
		if reservedKind(c.Subnet, a) == "" && a != gw && !slices.Contains(slices.Collect(maps.Values(c.Aux)), a) {
			return true
		}
	}
	return false
}

// at is the address k after the subnet start, plus hi in the upper half.
func at(s netip.Prefix, hi, k uint64) netip.Addr {
	u := fromAddr(s.Addr())
	u.hi += hi
	return toAddr(u.add64(k), s.Addr().Is6())
}

func (g *poolGen) positional(s netip.Prefix, a netip.Addr) {
	if reservedKind(s, a) != "" {
		g.valid = false
	}
}

func (g *poolGen) gateway(s netip.Prefix) netip.Addr {
	b := g.f.next()
	if b%4 == 0 {
		return netip.Addr{}
	}
	a := at(s, 0, uint64(b>>2)%uint64(min(size(s), 64)))
	g.positional(s, a)
	return a
}

func (g *poolGen) ipRange(s netip.Prefix, big bool) netip.Prefix {
	b := g.f.next()
	if b%3 == 0 && !big {
		return netip.Prefix{}
	}
	rh := int(b>>2) % (min(hostBits(s), 6) + 1)
	k := uint64(g.f.next()) % uint64(1<<(min(hostBits(s), 8)-rh))
	var hi uint64
	if big && s.Addr().Is6() {
		hi = []uint64{0, 1, 0xffff, 0x7}[b&3]
	}
	return netip.PrefixFrom(at(s, hi, k<<rh), s.Addr().BitLen()-rh)
}

func (g *poolGen) aux(s netip.Prefix) map[string]netip.Addr {
	n := g.f.next() % 3
	if n == 0 {
		return nil
	}
	m := map[string]netip.Addr{}
	seen := map[netip.Addr]bool{}
	for range n {
		a := at(s, 0, uint64(g.f.next())%uint64(min(size(s), 256)))
		g.positional(s, a)
		if seen[a] {
			g.valid = false
		}
		seen[a] = true
		m[fmt.Sprintf("a%d", g.nAux)] = a
		g.nAux++
	}
	return m
}

// pickAddr chooses an address to request or release.
func pickAddr(f *feed, cfgs []PoolConfig, m *model) netip.Addr {
	p := m.pools[int(f.next())%len(m.pools)]
	c := cfgs[int(f.next())%len(cfgs)]
	k := uint64(f.next())
	switch f.next() % 4 {
	case 0:
		return p.window[int(k)%len(p.window)]
	case 1:
		return at(c.Subnet, 0, k%uint64(min(size(c.Subnet), 256)))
	case 2:
		return toAddr(fromAddr(lastAddr(c.Subnet)).sub(u128{0, k % 4}), c.Subnet.Addr().Is6())
	}
	return toAddr(fromAddr(lastAddr(c.Subnet)).add64(1+k), c.Subnet.Addr().Is6())
}

func FuzzSpace(f *testing.F) {
	f.Add([]byte{1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 3, 4, 5})
	f.Add([]byte{2, 12, 9, 4, 1, 2, 3, 4, 2, 13, 5, 0, 9, 0, 0, 1, 1, 2, 1, 1, 0, 3, 3, 0, 0, 1, 5, 0, 0})
	f.Add([]byte{0x81, 3, 7, 5, 200, 1, 7, 0, 0, 1, 2, 3, 1, 1, 0, 0, 0, 1, 4, 2})
	f.Add([]byte{0x82, 2, 20, 3, 2, 1, 1, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 5, 0, 0, 0, 0, 1, 1, 1})
	f.Add([]byte{3, 17, 4, 1, 1, 0, 1, 9, 0, 1, 1, 0, 0, 0, 0, 2, 0, 1, 7, 1, 0, 0, 3, 0, 0, 0})
	f.Fuzz(fuzzSpace)
}

func fuzzSpace(t *testing.T, data []byte) {
	fd := &feed{b: data}
	serial := fd.next()&1 != 0
	g := &poolGen{f: fd, valid: true, bases: map[string]bool{}}
	cfgs := make([]PoolConfig, 1+int(fd.next()%3))
	for i := range cfgs {
		cfgs[i] = g.pool(i)
	}
	s, err := New(cfgs, Options{Serial: serial})
	if (err == nil) != g.valid {
		t.Fatalf("New(%+v) = %v, model says valid=%v", cfgs, err, g.valid)
	}
	if err != nil {
		return
	}
	m := &model{held: map[netip.Addr]string{}, serial: serial}
	for _, c := range s.Pools() {
		m.pools = append(m.pools, newModelPool(c))
	}
	for step := 0; len(fd.b) > 0 && step < 400; step++ {
		runOp(t, fd, s, m, cfgs)
	}
	checkHeld(t, s, m)
}

func runOp(t *testing.T, fd *feed, s *Space, m *model, cfgs []PoolConfig) {
	op := fd.next()
	owner := []string{"", "a", "b", "c"}[op>>6]
	switch op % 6 {
	case 0, 1:
		checkAllocate(t, s, m, op%2 == 1, owner)
	case 2:
		checkRequest(t, s, m, pickAddr(fd, cfgs, m), owner)
	case 3, 4:
		a := pickAddr(fd, cfgs, m)
		m.release(a)
		s.Release(a)
		if o, ok := s.Owner(a); ok {
			t.Fatalf("Owner(%s) = %q after Release", a, o)
		}
	case 5:
		if err := s.Load(s.Held()); err != nil {
			t.Fatalf("Load(Held()): %v", err)
		}
		m.reload()
		if n := op >> 6; n > 0 { // and resume after n addresses
			var addrs []netip.Addr
			for range n {
				addrs = append(addrs, pickAddr(fd, cfgs, m))
			}
			s.ResumeAfter(addrs...)
			m.resume(addrs)
		}
	}
}

func checkAllocate(t *testing.T, s *Space, m *model, v6 bool, owner string) {
	want, werr := m.allocate(v6, owner)
	got, err := s.Allocate(v6, owner)
	if werr != nil {
		if !errors.Is(err, werr) {
			t.Fatalf("Allocate(v6=%v) = %v, %v; want %v", v6, got, err, werr)
		}
		return
	}
	if err != nil || got.Addr() != want {
		t.Fatalf("Allocate(v6=%v) = %v, %v; want %v", v6, got, err, want)
	}
	if p := m.find(want); p.reserved[want] || got.Bits() != p.subnet.Bits() {
		t.Fatalf("Allocate handed out %v (reserved %v)", got, p.reserved[want])
	}
}

func checkRequest(t *testing.T, s *Space, m *model, a netip.Addr, owner string) {
	prev := m.held[a]
	want := m.request(a, owner)
	_, err := s.Request(a, owner)
	for _, sentinel := range []error{ErrOutside, ErrReserved, ErrTaken} {
		if errors.Is(err, sentinel) != errors.Is(want, sentinel) || (err == nil) != (want == nil) {
			t.Fatalf("Request(%s) = %v, want %v", a, err, want)
		}
	}
	var te *TakenError
	if errors.As(err, &te) && te.Owner != prev {
		t.Fatalf("Request(%s): %v, want owner %q", a, err, prev)
	}
	o, ok := s.Owner(a)
	if wo, wok := m.held[a]; ok != wok || o != wo {
		t.Fatalf("Owner(%s) = %q, %v; model %q, %v", a, o, ok, wo, wok)
	}
}

func checkHeld(t *testing.T, s *Space, m *model) {
	held := s.Held()
	if len(held) != len(m.held) {
		t.Fatalf("Held() has %d addresses, model %d", len(held), len(m.held))
	}
	for _, h := range held {
		if o, ok := m.held[h.Addr]; !ok || o != h.Owner {
			t.Fatalf("Held() has %v, model %q, %v", h, o, ok)
		}
	}
	var used uint64
	for _, u := range s.Usage() {
		used += u.Used
	}
	if used != uint64(len(m.held)) {
		t.Fatalf("Usage counts %d used, model %d", used, len(m.held))
	}
}
