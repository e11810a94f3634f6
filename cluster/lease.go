package cluster

// Leasing blocks: the lowest block no host holds, with a create-if-absent
// transaction guarded like every lease and claim (guard.go).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mvlan/mvlan/ipam"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxLeaseTries bounds the retries of a block lease lost to another host.
const maxLeaseTries = 64

// lease takes the lowest block no host holds. Caller holds etcdMu.
func (p *Pool) lease(ctx context.Context) error {
	p.flush(ctx)
	for try := 0; try < maxLeaseTries; try++ {
		b, lost, missing, err := p.freeBlock(ctx)
		if err != nil {
			return err
		}
		if lost.IsValid() {
			return p.adopt(ctx, lost)
		}
		if missing.IsValid() {
			if err := p.restore(ctx, missing); err != nil {
				return err
			}
			continue
		}
		done, err := p.leaseOne(ctx, b)
		if done || err != nil {
			return err
		}
	}
	return fmt.Errorf("lease a block of %s: lost %d races for a free block to other hosts; try again", p.rng, maxLeaseTries)
}

// leaseOne leases block b if no host holds it; false: try another (lost
// to another host, or this host's membership put back).
func (p *Pool) leaseOne(ctx context.Context, b netip.Prefix) (bool, error) {
	guard, err := p.guard(ctx)
	if err != nil {
		return false, err
	}
	key := blockKey(p.net, b)
	start, end := claimsRange(p.net, b)
	r, err := p.c.txn(ctx, "lease block "+b.String(),
		append(guard, clientv3.Compare(clientv3.CreateRevision(key), "=", 0)),
		[]clientv3.Op{clientv3.OpPut(key, p.c.host), clientv3.OpGet(start, clientv3.WithRange(end))}, p.guardGets())
	if err != nil {
		return false, err
	}
	if !r.Succeeded {
		if again, err := p.guardRetry(ctx, r.Responses); again || err != nil {
			return false, err
		}
		p.mu.Lock()
		p.Conflicts++
		p.mu.Unlock()
		p.c.m.conflicts.WithLabelValues("block").Inc()
		return false, nil
	}
	claims := map[netip.Addr]string{}
	for _, kv := range r.Responses[1].GetResponseRange().Kvs {
		a, err := parseClaimKey(p.net, string(kv.Key), b.Addr().Is6())
		if err != nil {
			return false, err
		}
		claims[a] = string(kv.Value)
	}
	return true, p.addBlock(b, claims)
}

// addBlock records a leased block with the claims inside it: this host's
// held ones move from extra into it, other hosts' stay held there. A
// claim of this host its state does not know is left to the audit. What
// this host's endpoints still hold in it without a claim (the block was
// theirs before it was reclaimed while the host was away, or their claim
// was) moves into it too, so that it is never handed out again here.
func (p *Pool) addBlock(b netip.Prefix, claims map[netip.Addr]string) error {
	sp, err := p.newBlock(b)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocks[b] != nil {
		return fmt.Errorf("block %s of %s: leased while this host holds it already", b, p.rng)
	}
	for a, h := range claims {
		owner := foreignOwner(h)
		if h == p.c.host {
			o, held := p.extra[a]
			if !held {
				p.unsure = p.unsure || !p.st.Claims[a] && !p.st.Pending[a]
				continue // Take holds it, if it is under way
			}
			owner = o
			delete(p.extra, a)
		} else {
			p.st.Foreign[a] = h
		}
		if _, err := sp.Request(a, owner); err != nil && !errors.Is(err, ipam.ErrReserved) {
			return fmt.Errorf("block %s: claim %s: %w", b, a, err)
		}
	}
	p.keepUnclaimed(b, sp)
	p.blocks[b] = sp
	p.st.Blocks = append(p.st.Blocks, b)
	return p.st.write(p.file)
}

// keepUnclaimed moves the addresses of extra inside block b into its space
// sp; one sp refuses (another host's claim in it: both hosts use it)
// stays in extra, logged. Caller holds mu.
func (p *Pool) keepUnclaimed(b netip.Prefix, sp *ipam.Space) {
	for a, o := range p.extra {
		if !b.Contains(a) {
			continue
		}
		if _, err := sp.Request(a, o); err != nil {
			p.c.log.Warn("cluster: an address this host's endpoint holds cannot be kept in a block this host leased (another host claims it, or it is reserved)", "network", p.net, "addr", a, "owner", o, "err", err)
			continue
		}
		delete(p.extra, a)
	}
}

// adopt takes back block b, which etcd has as this host's but the host
// does not hold: a lease that timed out here and reached etcd after all.
func (p *Pool) adopt(ctx context.Context, b netip.Prefix) error {
	start, end := claimsRange(p.net, b)
	key := blockKey(p.net, b)
	r, err := p.c.txn(ctx, "adopt block "+b.String(),
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", p.c.host)},
		[]clientv3.Op{clientv3.OpGet(start, clientv3.WithRange(end))}, nil)
	if err != nil || !r.Succeeded {
		return err
	}
	claims := map[netip.Addr]string{}
	for _, kv := range r.Responses[0].GetResponseRange().Kvs {
		a, err := parseClaimKey(p.net, string(kv.Key), b.Addr().Is6())
		if err != nil {
			return err
		}
		claims[a] = string(kv.Value)
	}
	return p.addBlock(b, claims)
}

// adoptable reports whether b, etcd's as this host's, is not held here
// and may be taken up (mayAdopt).
func (p *Pool) adoptable(b netip.Prefix) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocks[b] == nil && p.mayAdopt(b, time.Now())
}

// freeBlock finds the lowest block of the range no host holds, or a block
// etcd has as this host's that it does not hold (lost), or one this host
// holds that etcd lost (missing: its key deleted), which restore puts
// back: leased again as new, its space would start over and hand out what
// this host's endpoints hold, and left out, another host would lease it.
func (p *Pool) freeBlock(ctx context.Context) (free, lost, missing netip.Prefix, err error) {
	r, err := p.c.get(ctx, "list blocks of "+p.rng.String(), blocksDir(p.net), clientv3.WithPrefix())
	if err != nil {
		return free, lost, missing, err
	}
	inEtcd := map[netip.Prefix]bool{}
	taken := make([]uint64, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		b, err := parseBlockKey(p.net, string(kv.Key), p.rng.Addr().Is6())
		if err != nil {
			return free, lost, missing, err
		}
		if b.Bits() != p.bits || !p.rng.Contains(b.Addr()) {
			continue
		}
		if string(kv.Value) == p.c.host && p.adoptable(b) {
			return free, b, missing, nil
		}
		inEtcd[b] = true
		taken = append(taken, blockIndex(p.rng, p.bits, b.Addr()))
	}
	for _, b := range p.Blocks() {
		if b.Bits() == p.bits && p.rng.Contains(b.Addr()) && !inEtcd[b] {
			return free, lost, b, nil
		}
	}
	slices.Sort(taken)
	var i uint64
	for _, t := range taken {
		if t != i {
			break
		}
		i++
	}
	if n := p.bits - p.rng.Bits(); n < 64 && i >= 1<<n {
		return free, lost, missing, fmt.Errorf("%w: every /%d block of %s is held by a host", ipam.ErrExhausted, p.bits, p.rng)
	}
	return blockAt(p.rng, p.bits, i), lost, missing, nil
}

// restore puts back the key of block b, which this host holds and etcd
// lost, keeping what its space holds; one another host leased meanwhile
// is lost here (loseBlock: its endpoints keep their addresses, no other is
// handed out). Caller holds etcdMu.
func (p *Pool) restore(ctx context.Context, b netip.Prefix) error {
	guard, err := p.guard(ctx)
	if err != nil {
		return err
	}
	key := blockKey(p.net, b)
	r, err := p.c.txn(ctx, "restore block "+b.String(),
		append(guard, clientv3.Compare(clientv3.CreateRevision(key), "=", 0)),
		[]clientv3.Op{clientv3.OpPut(key, p.c.host)}, p.guardGets())
	if err != nil {
		return err
	}
	if !r.Succeeded {
		if again, err := p.guardRetry(ctx, r.Responses); again || err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.loseBlock(b, false)
		return p.st.write(p.file)
	}
	p.c.log.Warn("cluster: a block this host holds was missing from etcd (its key deleted); put back", "network", p.net, "block", b)
	return nil
}
