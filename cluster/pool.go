package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvlan/mvlan/ipam"
)

// DefaultBlockBits are the prefix lengths of a block when a network
// names none: /28 (16 addresses) for IPv4, /122 (64) for IPv6.
func DefaultBlockBits(v6 bool) int {
	if v6 {
		return 122
	}
	return 28
}

// Pool is one subnet of a cluster network as one host sees it: the blocks
// it holds, each an ipam.Space whose ip-range is the block, and the exact
// addresses it claimed. It is safe for concurrent use; etcd is asked only
// when no held block has a free address, for exact addresses, and to
// delete released claims.
type Pool struct {
	c     *Client
	net   string // the network's ID
	name  string // the network's name (its definition's key)
	cfg   ipam.PoolConfig
	rng   netip.Prefix // the ip-range, or the subnet: blocks are cut from it
	bits  int          // a block's prefix length
	file  string
	whole *ipam.Space // the network's pool, to validate exact addresses (valid)
	// wholeMu: one validation at a time (valid holds the address in whole
	// for a moment).
	wholeMu sync.Mutex

	etcdMu sync.Mutex // one etcd write sequence (lease, claim, flush) at a time
	mu     sync.Mutex // guards what follows
	st     state
	blocks map[netip.Prefix]*ipam.Space
	extra  map[netip.Addr]string // held, outside this host's blocks (claims)
	aside  map[netip.Addr]bool   // held in a block: in use on the wire (SetAside)
	defRev int64                 // the definition's create revision (guard.go); 0: not looked up
	closed bool                  // Close: no more leases or claims
	// kept: the dead hosts' blocks (and claims, as /32 or /128) that
	// reclaim kept because an address answered, and for which host and
	// epoch: counted and logged once, not at every tick (reclaim.go).
	kept map[netip.Prefix]keptFor
	// emptySince: when each held block was first found empty
	// (giveback.go).
	emptySince map[netip.Prefix]time.Time
	// returning: blocks given back whose answer was lost, and when the
	// delete was sent (giveback.go).
	returning map[netip.Prefix]time.Time
	// suspect: reopened after a leave cut short (Reopen), or opened from a
	// file a removal marked (state.Leaving); its blocks are used once verify
	// has checked them.
	suspect atomic.Bool
	// unsure: a claim may have reached etcd without being recorded here;
	// until unsureUntil, one may still land (landLate); audited: when the
	// claims were last audited (verify.go).
	unsure      bool
	unsureUntil time.Time
	audited     time.Time
	auditEvery  time.Duration

	Conflicts uint64 // block leases lost to another host (guarded by mu)
}

// OpenPool opens the pool cfg of network nw, with blocks of prefix
// length bits (0: DefaultBlockBits), from its local file (made if
// absent). It does not talk to etcd. Feed the addresses the host's
// endpoints hold back with Load before handing out any.
func (c *Client) OpenPool(nw Network, cfg ipam.PoolConfig, bits int, file string) (*Pool, error) {
	whole, err := ipam.New([]ipam.PoolConfig{cfg}, ipam.Options{})
	if err != nil {
		return nil, err
	}
	cfg = whole.Pools()[0]
	rng := cfg.IPRange
	if !rng.IsValid() {
		rng = cfg.Subnet
	}
	v6 := rng.Addr().Is6()
	if bits == 0 {
		bits = DefaultBlockBits(v6)
	}
	if bits > rng.Addr().BitLen() || bits < 1 {
		return nil, fmt.Errorf("block size /%d is not a prefix length of %s; use e.g. /%d", bits, rng, DefaultBlockBits(v6))
	}
	bits = max(bits, rng.Bits()) // a range smaller than a block is one block
	st, err := readState(file)
	if err != nil {
		return nil, err
	}
	p := &Pool{c: c, net: nw.ID, name: nw.Name, cfg: cfg, rng: rng, bits: bits, file: file, whole: whole, st: st,
		blocks: map[netip.Prefix]*ipam.Space{}, extra: map[netip.Addr]string{}, aside: map[netip.Addr]bool{},
		kept: map[netip.Prefix]keptFor{}, emptySince: map[netip.Prefix]time.Time{}, returning: map[netip.Prefix]time.Time{}, auditEvery: auditEvery}
	for _, b := range st.Blocks {
		if b.Bits() != bits || !rng.Contains(b.Addr()) {
			return nil, fmt.Errorf("%s: block %s is not a /%d of %s", file, b, bits, rng)
		}
		if p.blocks[b], err = p.newBlock(b); err != nil {
			return nil, err
		}
	}
	if err := p.load(nil, false); err != nil {
		return nil, err
	}
	p.suspect.Store(st.Leaving) // a removal cut short by a crash, or refused
	c.register(p)
	return p, nil
}

// Close stops checking the pool's blocks and refuses leases and claims
// (its network is being removed here), once those under way are done.
func (p *Pool) Close() {
	p.etcdMu.Lock()
	defer p.etcdMu.Unlock()
	p.mu.Lock()
	p.closed = true
	p.st.Leaving = true // before the leave gives anything back: a crash after it finds it
	if err := p.st.write(p.file); err != nil {
		p.c.log.Warn("cluster: pool not marked leaving; a start after a crash in the removal uses its blocks unchecked", "network", p.net, "err", err)
	}
	p.mu.Unlock()
	p.c.unregister(p)
}

// Reopen undoes Close, after a leave that etcd did not take whole: it
// may have given some blocks and claims back already, so the pool hands
// out none of its blocks' addresses until verify has checked them
// (Reserve does it; so does the next liveness beat).
func (p *Pool) Reopen() {
	p.etcdMu.Lock()
	defer p.etcdMu.Unlock()
	p.mu.Lock()
	p.closed = false
	p.mu.Unlock()
	p.suspect.Store(true)
	p.c.register(p)
}

// errSuspect fails what a pool Reopen left unchecked hands out.
var errSuspect = errors.New("its blocks are used again once etcd confirms them (a removal was cut short)")

// errClosed fails the leases and claims of a closed pool.
var errClosed = errors.New("the network is being removed on this host")

// writable fails once the pool is closed or its network gone; caller
// holds etcdMu, before a lease or claim.
func (p *Pool) writable() error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("network %s: %w", p.name, errClosed)
	}
	return p.c.Gone(p.net)
}

// handing is whether addresses of the held blocks may be handed out: not
// once the network is gone from etcd, nor past the fence.
func (p *Pool) handing() error {
	if err := p.c.Gone(p.net); err != nil {
		return err
	}
	if p.suspect.Load() {
		return fmt.Errorf("network %s: %w", p.name, errSuspect)
	}
	return p.c.fence()
}

func (p *Pool) newBlock(b netip.Prefix) (*ipam.Space, error) {
	c := p.cfg
	c.IPRange = b
	return ipam.New([]ipam.PoolConfig{c}, ipam.Options{})
}

// Blocks returns the blocks this host holds, in address order.
func (p *Pool) Blocks() []netip.Prefix {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.SortedFunc(maps.Keys(p.blocks), comparePrefix)
}

func comparePrefix(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }

// Load replaces the held addresses with held (the host's endpoints),
// keeping the addresses of other hosts' claims inside its blocks. On
// error nothing changes.
func (p *Pool) Load(held []ipam.Held) error { return p.load(held, true) }

// TryLoad reports whether Load would take held (alone), changing
// nothing, here or in etcd.
func (p *Pool) TryLoad(held []ipam.Held) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _, err := p.loaded(held)
	return err
}

// load is Load; with sweep, this host's claims no endpoint holds go back.
func (p *Pool) load(held []ipam.Held, sweep bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	fresh, extra, err := p.loaded(held)
	if err != nil {
		return err
	}
	for a := range p.st.Claims { // claimed, then released before a crash
		if _, ok := extra[a]; sweep && !ok && p.blocks[p.blockOf(a)] == nil {
			delete(p.st.Claims, a)
			p.st.Pending[a] = true
		}
	}
	p.blocks, p.extra, p.aside = fresh, extra, map[netip.Addr]bool{}
	return nil
}

// loaded is what load makes of held: this host's blocks, each with its
// addresses and the other hosts' claims in it, and the addresses outside
// them. Caller holds p.mu.
func (p *Pool) loaded(held []ipam.Held) (fresh map[netip.Prefix]*ipam.Space, extra map[netip.Addr]string, err error) {
	per := map[netip.Prefix][]ipam.Held{}
	for a, h := range p.st.Foreign {
		b := p.blockOf(a)
		per[b] = append(per[b], ipam.Held{Addr: a, Owner: foreignOwner(h)})
	}
	extra = map[netip.Addr]string{}
	var outside []ipam.Held
	for _, h := range held {
		if b := p.blockOf(h.Addr); p.blocks[b] != nil {
			per[b] = append(per[b], h)
		} else {
			outside, extra[h.Addr] = append(outside, h), h.Owner
		}
	}
	// Those outside this host's blocks (claims) are refused as a block's
	// would be: a reserved address (the gateway's), one held twice.
	if err := checkHeld(p.cfg, outside); err != nil {
		return nil, nil, err
	}
	fresh = map[netip.Prefix]*ipam.Space{}
	for b := range p.blocks {
		sp, err := p.newBlock(b)
		if err == nil {
			err = sp.Load(per[b])
		}
		if err != nil {
			return nil, nil, fmt.Errorf("block %s: %w", b, err)
		}
		fresh[b] = sp
	}
	return fresh, extra, nil
}

// checkHeld is nil if a space of cfg alone would take held.
func checkHeld(cfg ipam.PoolConfig, held []ipam.Held) error {
	if len(held) == 0 {
		return nil
	}
	scratch, err := ipam.New([]ipam.PoolConfig{cfg}, ipam.Options{})
	if err != nil {
		return err
	}
	return scratch.Load(held)
}

func foreignOwner(host string) string { return "a claim of host " + host }

// blockOf is the block that would hold a; invalid when a is outside the
// range blocks are cut from.
func (p *Pool) blockOf(a netip.Addr) netip.Prefix {
	if !p.rng.Contains(a) {
		return netip.Prefix{}
	}
	return blockAt(p.rng, p.bits, blockIndex(p.rng, p.bits, a))
}

// Allocate hands out a free address of a held block for owner, leasing a
// new block from etcd when none has one. With etcd unreachable and no
// free address held, it fails with ErrUnreachable naming the cluster.
func (p *Pool) Allocate(ctx context.Context, owner string) (netip.Prefix, error) {
	for {
		if a, ok := p.allocLocal(owner); ok {
			return a, nil
		}
		if err := p.Reserve(ctx); err != nil {
			return netip.Prefix{}, err
		}
	}
}

// Reserve makes sure a held block has a free address, leasing one when
// none has. It is what Allocate waits for on etcd; TakeFree hands the
// address out without I/O.
func (p *Pool) Reserve(ctx context.Context) error {
	if err := p.c.Gone(p.net); err != nil {
		return err
	}
	if err := p.c.ready(ctx); err != nil {
		return fmt.Errorf("network %s: %w", p.net, err)
	}
	if p.suspect.Load() {
		if err := p.verify(ctx); err != nil {
			return fmt.Errorf("network %s: %w: %w", p.name, errSuspect, err)
		}
	}
	if p.hasFree() { // no I/O: not behind a Sync waiting for etcd
		return nil
	}
	p.etcdMu.Lock()
	defer p.etcdMu.Unlock()
	if p.hasFree() { // leased meanwhile
		return nil
	}
	if err := p.writable(); err != nil {
		return err
	}
	if err := p.lease(ctx); err != nil {
		if errors.Is(err, ipam.ErrExhausted) {
			held := "by other hosts"
			if n := len(p.Blocks()); n > 0 {
				held = fmt.Sprintf("%d of them by this host, with no free address", n)
			}
			return fmt.Errorf("network %s: %w in %s: every /%d block of it is held, %s (a block goes back to the pool once it held no address for %v); remove containers, or use a network with a larger range",
				p.name, ipam.ErrExhausted, p.rng, p.bits, held, blockIdle)
		}
		return fmt.Errorf("network %s: no free address in the %d blocks this host holds of %s: %w",
			p.name, len(p.Blocks()), p.rng, err)
	}
	return nil
}

// hasFree reports whether a held block has a free address. The first
// such block, the one TakeFree hands out of, counts as used from now (not
// idle): given back between Reserve and TakeFree, it would leave nothing
// to take.
func (p *Pool) hasFree() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range slices.SortedFunc(maps.Keys(p.blocks), comparePrefix) {
		for _, u := range p.blocks[b].Usage() {
			if u.FreeInRange > 0 {
				delete(p.emptySince, b)
				return true
			}
		}
	}
	return false
}

// TakeFree hands out a free address of a held block, without I/O; false
// when there is none (Reserve first).
func (p *Pool) TakeFree(owner string) (netip.Prefix, bool) { return p.allocLocal(owner) }

func (p *Pool) allocLocal(owner string) (netip.Prefix, bool) {
	if p.handing() != nil {
		return netip.Prefix{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range slices.SortedFunc(maps.Keys(p.blocks), comparePrefix) {
		if a, err := p.blocks[b].Allocate(b.Addr().Is6(), owner); err == nil {
			return a, true
		}
	}
	return netip.Prefix{}, false
}
