package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mvlan/mvlan/ipam"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrForeignBlock is wrapped by the error of an exact address inside a
// block another host holds: only that host hands it out.
var ErrForeignBlock = errors.New("address in another host's block")

// Request holds exactly addr for owner: Claim, then Take.
func (p *Pool) Request(ctx context.Context, addr netip.Addr, owner string) (netip.Prefix, error) {
	if err := p.Claim(ctx, addr); err != nil {
		return netip.Prefix{}, err
	}
	pf, err := p.Take(addr, owner)
	if err != nil {
		p.Abandon(addr)
	}
	return pf, err
}

// Claim makes addr this host's to hand out with Take: nothing to do in a
// block it holds, else a claim in etcd. It fails like ipam.Space.Request
// (*ipam.TakenError, *ipam.ReservedError, *ipam.OutsideError), with
// ErrForeignBlock when another host holds addr's block, and with
// ErrUnreachable when etcd does not answer.
func (p *Pool) Claim(ctx context.Context, addr netip.Addr) error {
	addr = addr.WithZone("")
	if err := p.c.Gone(p.net); err != nil {
		return err
	}
	if err := p.valid(addr, "check"); err != nil {
		return err
	}
	if err := p.forgetReleased(ctx, addr); err != nil {
		return err
	}
	if o, ok := p.Owner(addr); ok {
		return &ipam.TakenError{Addr: addr, Owner: o}
	}
	if p.touchHeld(p.blockOf(addr)) {
		return p.c.ready(ctx)
	}
	p.etcdMu.Lock()
	defer p.etcdMu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	p.flush(ctx)
	p.mu.Lock()
	pending, claimed := p.st.Pending[addr], p.st.Claims[addr]
	p.mu.Unlock()
	if claimed {
		return nil
	}
	if pending {
		return fmt.Errorf("claim %s: %w: its release is not yet given back to etcd at %s", addr, ErrUnreachable, p.c.url)
	}
	if err := p.claim(ctx, addr); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Claims[addr] = true
	return p.st.write(p.file)
}

// valid fails like ipam.Space.Request (*ipam.OutsideError,
// *ipam.ReservedError) when addr is no address of the network for owner;
// it holds nothing. One at a time: a concurrent one would find addr
// taken by the other's moment of holding it.
func (p *Pool) valid(addr netip.Addr, owner string) error {
	p.wholeMu.Lock()
	defer p.wholeMu.Unlock()
	if _, err := p.whole.Request(addr, owner); err != nil {
		return err
	}
	p.whole.Release(addr)
	return nil
}

// Take holds addr for owner without I/O: an address of a held block, or
// one this host claimed (Claim). A claim Take never follows goes back
// with Abandon.
func (p *Pool) Take(addr netip.Addr, owner string) (netip.Prefix, error) {
	addr = addr.WithZone("")
	p.mu.Lock()
	defer p.mu.Unlock()
	pf := netip.PrefixFrom(addr, p.cfg.Subnet.Bits())
	if sp := p.blocks[p.blockOf(addr)]; sp != nil {
		if err := p.handing(); err != nil {
			return pf, err
		}
		return sp.Request(addr, owner)
	}
	if o, ok := p.extra[addr]; ok {
		return pf, &ipam.TakenError{Addr: addr, Owner: o}
	}
	if !p.st.Claims[addr] {
		if err := p.valid(addr, owner); err != nil {
			return pf, err
		}
		return pf, fmt.Errorf("%s is neither in a block this host holds nor claimed by it in etcd", addr)
	}
	p.extra[addr] = owner
	return pf, nil
}

// Abandon gives back a claim no endpoint took; the next request that
// reaches etcd deletes it.
func (p *Pool) Abandon(addr netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, held := p.extra[addr]; !held && p.st.Claims[addr] {
		delete(p.st.Claims, addr)
		p.st.Pending[addr] = true
	}
}

// forgetReleased drops another host's claim inside this host's block
// once etcd no longer has it (that host released it), so that addr can
// be asked for again.
func (p *Pool) forgetReleased(ctx context.Context, addr netip.Addr) error {
	p.mu.Lock()
	h, foreign := p.st.Foreign[addr]
	p.mu.Unlock()
	if !foreign {
		return nil
	}
	r, err := p.c.get(ctx, "look up claim "+addr.String(), claimKey(p.net, addr))
	if err != nil || (len(r.Kvs) > 0 && string(r.Kvs[0].Value) == h) {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.Foreign[addr] == h {
		p.freeForeign(addr)
	}
	return p.st.write(p.file)
}

// Sync gives the claims released while etcd was away back to it (the
// next lease or claim does it too), and audits the claims when due
// (verify.go): a claim of this host that reached etcd unrecorded goes
// back, other hosts' claims inside its blocks that they released are
// freed; then it gives back the blocks empty for a while (giveback.go).
func (p *Pool) Sync(ctx context.Context) {
	p.etcdMu.Lock()
	defer p.etcdMu.Unlock()
	if p.flush(ctx) != nil {
		return
	}
	if p.auditDue() {
		_ = p.audit(ctx) // still due: the next Sync tries again
	}
	p.giveBackIdle(ctx, time.Now())
}

// claim creates addr's claim key, unless it exists or addr's block is
// another host's; a membership found gone is put back once.
func (p *Pool) claim(ctx context.Context, addr netip.Addr) error {
	for try := 0; ; try++ {
		again, err := p.claimOnce(ctx, addr)
		if !again || try > 0 {
			return err
		}
	}
}

// claimOnce is one claim transaction; true: the membership was put back,
// try again.
func (p *Pool) claimOnce(ctx context.Context, addr netip.Addr) (bool, error) {
	guard, err := p.guard(ctx)
	if err != nil {
		return false, err
	}
	key := claimKey(p.net, addr)
	cmp := append(guard, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	els := []clientv3.Op{clientv3.OpGet(key)}
	b := p.blockOf(addr)
	if b.IsValid() {
		bk := blockKey(p.net, b)
		if p.holds(b) {
			cmp = append(cmp, clientv3.Compare(clientv3.Value(bk), "=", p.c.host))
		} else {
			cmp = append(cmp, clientv3.Compare(clientv3.CreateRevision(bk), "=", 0))
		}
		els = append(els, clientv3.OpGet(bk))
	}
	r, err := p.c.txn(ctx, "claim "+addr.String(), cmp, []clientv3.Op{clientv3.OpPut(key, p.c.host)}, append(els, p.guardGets()...))
	if err != nil {
		p.mu.Lock()
		// It may reach etcd all the same, now or later: audited by Sync.
		p.unsure, p.unsureUntil = true, time.Now().Add(landLate)
		p.mu.Unlock()
		return false, err
	}
	if r.Succeeded {
		return false, nil
	}
	if again, err := p.guardRetry(ctx, r.Responses); again || err != nil {
		return again, err
	}
	return false, p.claimRefused(addr, b, r.Responses)
}

// claimRefused is the error of a claim of addr (in block b) whose guard
// held: the address or its block is another host's.
func (p *Pool) claimRefused(addr netip.Addr, b netip.Prefix, resps []*etcdserverpb.ResponseOp) error {
	if kvs := resps[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if string(kvs[0].Value) == p.c.host {
			// This host's own claim, from a request that timed out here
			// but reached etcd after all (Take still finds it unheld or
			// held, as it is).
			return nil
		}
		p.c.m.conflicts.WithLabelValues("claim").Inc()
		return &ipam.TakenError{Addr: addr, Owner: foreignOwner(string(kvs[0].Value))}
	}
	if !b.IsValid() {
		return fmt.Errorf("claim %s: refused by etcd; try again", addr)
	}
	if kvs := resps[1].GetResponseRange().Kvs; len(kvs) > 0 && string(kvs[0].Value) != p.c.host {
		p.c.m.conflicts.WithLabelValues("claim").Inc()
		return fmt.Errorf("%w: %s is in block %s, held by host %s; ask for an address outside it or let that host hand it out",
			ErrForeignBlock, addr, b, kvs[0].Value)
	}
	return fmt.Errorf("claim %s: block %s changed hands meanwhile; try again", addr, b)
}

func (p *Pool) holds(b netip.Prefix) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocks[b] != nil
}

// Owner returns the owner of a held address; false when this host does
// not hold it.
func (p *Pool) Owner(addr netip.Addr) (string, bool) {
	addr = addr.WithZone("")
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.extra[addr]; ok {
		return o, true
	}
	if sp := p.blocks[p.blockOf(addr)]; sp != nil {
		return sp.Owner(addr)
	}
	return "", false
}

// Release frees addr on this host, without I/O; its block stays held. A
// claim is given back to etcd by the next request that reaches it (a
// crash before that leaves it in the file, and Load finds it unheld).
func (p *Pool) Release(addr netip.Addr) {
	addr = addr.WithZone("")
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.extra, addr)
	delete(p.emptySince, p.blockOf(addr)) // in use until now: not idle (giveback.go)
	if sp := p.blocks[p.blockOf(addr)]; sp != nil {
		if o, ok := sp.Owner(addr); ok && o != foreignOwner(p.st.Foreign[addr]) {
			sp.Release(addr)
		}
	}
	if p.st.Claims[addr] {
		delete(p.st.Claims, addr)
		p.st.Pending[addr] = true
	}
}

// flush deletes the claims released since etcd last answered; what fails
// stays pending. Caller holds etcdMu.
func (p *Pool) flush(ctx context.Context) error {
	p.mu.Lock()
	pending := make([]netip.Addr, 0, len(p.st.Pending))
	for a := range p.st.Pending {
		pending = append(pending, a)
	}
	p.mu.Unlock()
	for _, a := range pending {
		key := claimKey(p.net, a)
		_, err := p.c.txn(ctx, "release "+a.String(),
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", p.c.host)},
			[]clientv3.Op{clientv3.OpDelete(key)}, nil)
		if err != nil {
			return err
		}
		p.mu.Lock()
		if !p.st.Claims[a] {
			delete(p.st.Pending, a)
		}
		_ = p.st.write(p.file) // a failed write leaves it pending: deleting twice is harmless
		p.mu.Unlock()
	}
	return nil
}

// Held returns the addresses this host's endpoints hold (not other hosts'
// claims inside its blocks).
func (p *Pool) Held() []ipam.Held {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ipam.Held
	for a, o := range p.extra {
		out = append(out, ipam.Held{Addr: a, Owner: o})
	}
	for _, sp := range p.blocks {
		for _, h := range sp.Held() {
			if _, foreign := p.st.Foreign[h.Addr]; !foreign && !p.aside[h.Addr] {
				out = append(out, h)
			}
		}
	}
	return out
}

func parseClaimKey(nw, key string, v6 bool) (netip.Addr, error) {
	b, err := parseBlockKey(nw, blocksDir(nw)+key[len(claimsDir(nw)):]+"-0", v6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("malformed claim key %q", key)
	}
	return b.Addr(), nil
}

// asideOwner holds the addresses SetAside keeps from being handed out.
const asideOwner = "a host on the wire (found by duplicate address detection)"

// SetAside keeps addr, free in a block this host holds, from being handed
// out until the pool is loaded again (the agent restarts): a probe found
// it in use on the wire. It reports whether addr was set aside.
func (p *Pool) SetAside(addr netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	sp := p.blocks[p.blockOf(addr)]
	if sp == nil {
		return false
	}
	if _, err := sp.Request(addr, asideOwner); err != nil {
		return false
	}
	p.aside[addr] = true
	return true
}
