package ipam

import (
	"math"
	"net/netip"
)

// pool is the state of one subnet. Addresses are tracked as 64-bit offsets
// from base: for subnets of up to 2^64 addresses base is the subnet address
// and every address has an offset; for larger IPv6 subnets base is the
// 2^64-aligned block holding the range start, and held addresses outside
// that block live in extra.
//
// Dynamic allocation hands out offsets of the window [lo, hi] (the ip-range,
// or its first 2^64 addresses). The frontier next moves up only: every free
// window offset below it sits in a free heap (cur, or lap for those behind
// the serial cursor) or in the gap, so the lowest free offset is min(cur)
// or the first clear offset from next on. Heaps are lazy: an entry that was
// requested while queued is dropped when popped. The gap [gapNext, gapEnd)
// is what a serial pool resumed past (resume) left below its cursor
// unwalked: a second frontier, below the cursor until the next lap, whose
// free offsets are in no heap.
type pool struct {
	cfg    PoolConfig // validated, gateway filled in
	v6     bool
	serial bool

	base    u128
	domLast uint64 // highest offset the bitset tracks
	lo, hi  uint64 // dynamic window

	reserved  map[netip.Addr]string // address -> reason
	resWindow uint64                // reserved offsets inside the window

	set        bitset
	extra      map[netip.Addr]string // held outside the bitset (subnets > /64)
	used       uint64
	usedWindow uint64

	next     uint64 // frontier
	full     bool   // the frontier has passed hi
	cur, lap u64heap
	cursor   uint64 // serial mode: allocation continues from here

	gapNext, gapEnd uint64 // serial mode, after resume: the gap; empty when gapNext >= gapEnd
}

func newPool(c PoolConfig, serial bool) *pool {
	if !c.Gateway.IsValid() {
		c.Gateway = InferGateway(c.Subnet)
	}
	rng := c.IPRange
	if !rng.IsValid() {
		rng = c.Subnet
	}
	p := &pool{cfg: c, v6: c.Subnet.Addr().Is6(), serial: serial, set: newBitset()}
	p.layout(rng)
	p.reserve()
	return p
}

func (p *pool) layout(rng netip.Prefix) {
	start := fromAddr(rng.Addr())
	if hb := hostBits(p.cfg.Subnet); hb <= 64 {
		p.base = fromAddr(p.cfg.Subnet.Addr())
		p.domLast = ones(hb).lo
	} else {
		p.base = u128{start.hi, 0}
		p.domLast = math.MaxUint64
	}
	p.lo = start.sub(p.base).lo
	p.hi = p.lo + ones(min(hostBits(rng), 64)).lo
	p.next, p.cursor = p.lo, p.lo
}

func (p *pool) reserve() {
	s := p.cfg.Subnet
	p.reserved = make(map[netip.Addr]string, len(p.cfg.Aux)+3)
	for _, a := range []netip.Addr{s.Addr(), lastAddr(s)} {
		if kind := reservedKind(s, a); kind != "" {
			p.reserved[a] = kind
		}
	}
	for name, a := range p.cfg.Aux {
		p.reserved[a] = "aux-address " + name
	}
	p.reserved[p.cfg.Gateway] = "gateway"
	for a := range p.reserved {
		off, ok := p.offset(a)
		if !ok {
			continue
		}
		w := p.set.getOrCreate(off >> 6)
		w.insert(uint(off&63), "")
		w.res |= 1 << (off & 63)
		if p.inWindow(off) {
			p.resWindow++
		}
	}
}

// offset returns the offset of a (an address of the subnet) and whether
// the bitset tracks it.
func (p *pool) offset(a netip.Addr) (uint64, bool) {
	d := fromAddr(a).sub(p.base)
	return d.lo, d.hi == 0 && d.lo <= p.domLast
}

func (p *pool) inWindow(off uint64) bool { return off >= p.lo && off <= p.hi }

func (p *pool) prefixAt(off uint64) netip.Prefix {
	return netip.PrefixFrom(toAddr(p.base.add64(off), p.v6), p.cfg.Subnet.Bits())
}

// allocate hands out the lowest free window offset (serial: the next free
// one from the cursor on, wrapping) and reports false when there is none.
func (p *pool) allocate(owner string) (uint64, bool) {
	off, ok := p.popFree()
	if !ok {
		off, ok = p.advance()
	}
	if !ok && p.serial && (len(p.lap) > 0 || p.gapNext < p.gapEnd) {
		p.wrap()
		off, ok = p.popFree()
	}
	if !ok {
		return 0, false
	}
	p.hold(off, owner)
	if p.serial {
		if off == p.hi {
			p.wrap()
		} else {
			p.cursor = off + 1
		}
	}
	return off, true
}

// wrap starts the next serial lap; cur is empty whenever it is called.
func (p *pool) wrap() {
	p.cur, p.lap = p.lap, p.cur[:0]
	p.cursor = p.lo
}

// popFree takes the lowest free offset below the frontier from the
// cursor on: of cur, or of the gap when this lap has reached it.
func (p *pool) popFree() (uint64, bool) {
	g, inGap := p.gapFree()
	for len(p.cur) > 0 && (!inGap || p.cur[0] < g) {
		off := p.cur.pop()
		w := p.set.get(off >> 6)
		bit := uint64(1) << (off & 63)
		w.queued &^= bit
		if w.held&bit == 0 {
			return off, true
		}
	}
	if inGap {
		p.gapNext = g + 1
	}
	return g, inGap
}

// gapFree is the gap's lowest free offset, if the cursor is at or below
// the gap (a lap after resume's); it moves gapNext up to it, past held
// offsets, and empties a gap with none.
func (p *pool) gapFree() (uint64, bool) {
	if p.gapNext >= p.gapEnd || p.cursor > p.gapNext {
		return 0, false
	}
	off, ok := p.set.nextClear(p.gapNext, p.gapEnd-1)
	if !ok {
		p.gapNext = p.gapEnd
		return 0, false
	}
	p.gapNext = off
	return off, true
}

// resume continues serial allocation after offset last, of the window, in
// a pool as Load leaves it (nothing queued, the cursor at lo), as if it
// had handed out every offset up to last: the free ones below the cursor
// wait for the next lap, in the gap. After hi, the next lap starts at lo
// anyway.
func (p *pool) resume(last uint64) {
	if last >= p.hi {
		return
	}
	p.cursor = last + 1
	if p.full || p.next >= p.cursor {
		return // no free offset below the cursor
	}
	p.gapNext, p.gapEnd = p.next, p.cursor
	p.next = p.cursor
	p.settle()
}

// lastIn is the highest window offset among addrs; false when none is in
// the window.
func (p *pool) lastIn(addrs []netip.Addr) (last uint64, found bool) {
	for _, a := range addrs {
		if a = a.WithZone(""); !p.cfg.Subnet.Contains(a) {
			continue
		}
		off, in := p.offset(a)
		if in && p.inWindow(off) && (!found || off > last) {
			last, found = off, true
		}
	}
	return last, found
}

// advance takes the first clear offset at or above the frontier.
func (p *pool) advance() (uint64, bool) {
	if p.full {
		return 0, false
	}
	off, ok := p.set.nextClear(p.next, p.hi)
	if !ok || off == p.hi {
		p.full = true
	} else {
		p.next = off + 1
	}
	return off, ok
}

// settle moves the frontier past held offsets without taking one, so that
// after Load the first Allocate does not walk what was loaded.
func (p *pool) settle() {
	if p.full {
		return
	}
	if off, ok := p.set.nextClear(p.next, p.hi); ok {
		p.next = off
	} else {
		p.full = true
	}
}

func (p *pool) hold(off uint64, owner string) {
	p.set.getOrCreate(off>>6).insert(uint(off&63), owner)
	p.used++
	if p.inWindow(off) {
		p.usedWindow++
	}
}

func (p *pool) release(off uint64) {
	key, bit := off>>6, uint64(1)<<(off&63)
	w := p.set.get(key)
	if w == nil || w.held&bit == 0 || w.res&bit != 0 {
		return
	}
	w.remove(uint(off & 63))
	p.used--
	if !p.inWindow(off) {
		p.set.dropIfEmpty(key, w)
		return
	}
	p.usedWindow--
	if !p.full && off >= p.next || off >= p.gapNext && off < p.gapEnd {
		p.set.dropIfEmpty(key, w)
		return // a frontier finds it
	}
	if w.queued&bit == 0 {
		w.queued |= bit
		if p.serial && off < p.cursor {
			p.lap.push(off)
		} else {
			p.cur.push(off)
		}
	}
}

// claim holds a for owner if it is free and not reserved.
func (p *pool) claim(a netip.Addr, owner string) error {
	off, in := p.offset(a)
	if !in {
		return p.claimExtra(a, owner)
	}
	bit := uint64(1) << (off & 63)
	if w := p.set.get(off >> 6); w != nil && w.held&bit != 0 {
		if w.res&bit != 0 {
			return &ReservedError{Addr: a, Subnet: p.cfg.Subnet, Reason: p.reserved[a]}
		}
		return &TakenError{Addr: a, Owner: w.owner(uint(off & 63))}
	}
	p.hold(off, owner)
	return nil
}

func (p *pool) claimExtra(a netip.Addr, owner string) error {
	if r, ok := p.reserved[a]; ok {
		return &ReservedError{Addr: a, Subnet: p.cfg.Subnet, Reason: r}
	}
	if o, ok := p.extra[a]; ok {
		return &TakenError{Addr: a, Owner: o}
	}
	if p.extra == nil {
		p.extra = make(map[netip.Addr]string)
	}
	p.extra[a] = owner
	p.used++
	return nil
}

func (p *pool) releaseAddr(a netip.Addr) {
	if off, in := p.offset(a); in {
		p.release(off)
		return
	}
	if _, ok := p.extra[a]; ok {
		delete(p.extra, a)
		p.used--
	}
}

func (p *pool) owner(a netip.Addr) (string, bool) {
	off, in := p.offset(a)
	if !in {
		o, ok := p.extra[a]
		return o, ok
	}
	bit := uint64(1) << (off & 63)
	w := p.set.get(off >> 6)
	if w == nil || w.held&bit == 0 || w.res&bit != 0 {
		return "", false
	}
	return w.owner(uint(off & 63)), true
}
