package cluster

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// auditEvery is how often Sync reads the claims inside a pool's blocks
// again while other hosts have claims there (to free those released).
const auditEvery = 10 * time.Second

// verify drops the blocks and claims etcd no longer has as this host's:
// reclaimed while it was away (liveness.go). Addresses its endpoints
// still have in them stay held here, outside any block, so that this
// host never hands them out again; a warning names them. It takes up the
// blocks etcd has as this host's that it does not hold (adopt). The
// claims are then audited (auditClaims).
func (p *Pool) verify(ctx context.Context) error {
	p.etcdMu.Lock()
	defer p.etcdMu.Unlock()
	if p.c.Gone(p.net) != nil {
		return nil // nothing of it is handed out any more
	}
	start, end := claimsRange(p.net, p.cfg.Subnet)
	r, err := p.c.txn(ctx, "check blocks and claims of "+p.cfg.Subnet.String(), nil, []clientv3.Op{
		clientv3.OpGet(blocksDir(p.net), clientv3.WithPrefix()), clientv3.OpGet(start, clientv3.WithRange(end))}, nil)
	if err != nil {
		return err
	}
	v6 := p.rng.Addr().Is6()
	mine := map[netip.Prefix]bool{}
	for _, kv := range r.Responses[0].GetResponseRange().Kvs {
		if b, err := parseBlockKey(p.net, string(kv.Key), v6); err == nil && string(kv.Value) == p.c.host {
			mine[b] = true
		}
	}
	p.mu.Lock()
	for b := range p.blocks {
		if !mine[b] {
			p.loseBlock(b, p.suspect.Load())
		}
	}
	// And the other way: a block etcd has as this host's that it does not
	// hold (a lease that timed out here and reached etcd after all) is
	// taken up, not left unused by every host until this one leaves; not
	// while a removal cut short is being settled (suspect).
	var lost []netip.Prefix
	for b := range mine {
		if p.blocks[b] == nil && b.Bits() == p.bits && p.rng.Contains(b.Addr()) && !p.suspect.Load() && p.mayAdopt(b, time.Now()) {
			lost = append(lost, b)
		}
	}
	p.mu.Unlock()
	for _, b := range lost {
		if err := p.adopt(ctx, b); err != nil {
			return err
		}
	}
	if err := p.auditClaims(ctx, p.claimsOf(r.Responses[1].GetResponseRange().Kvs)); err != nil {
		return err
	}
	if p.suspect.Load() {
		p.mu.Lock()
		p.st.Leaving = p.closed // still being removed: stays marked
		err = p.st.write(p.file)
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
	p.suspect.Store(false)
	return nil
}

// claimsOf are the claims of the pool's subnet among kvs, by address.
func (p *Pool) claimsOf(kvs []*mvccpb.KeyValue) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, kv := range kvs {
		if a, err := parseClaimKey(p.net, string(kv.Key), p.rng.Addr().Is6()); err == nil && p.cfg.Subnet.Contains(a) {
			out[a] = string(kv.Value)
		}
	}
	return out
}

// audit reads the claims of the pool's subnet and audits them; caller
// holds etcdMu.
func (p *Pool) audit(ctx context.Context) error {
	start, end := claimsRange(p.net, p.cfg.Subnet)
	r, err := p.c.get(ctx, "check claims of "+p.cfg.Subnet.String(), start, clientv3.WithRange(end))
	if err != nil {
		return err
	}
	return p.auditClaims(ctx, p.claimsOf(r.Kvs))
}

// landLate is how long after a claim whose answer was lost its request
// may still land in etcd (queued behind an election, say): until then
// every Sync audits, as an audit that found nothing may have come first.
const landLate = 30 * time.Second

// auditDue: a claim may have reached etcd unrecorded (unsure), or may
// still (unsureUntil), or other hosts' claims inside this host's blocks
// were not read for auditEvery.
func (p *Pool) auditDue() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unsure || time.Now().Before(p.unsureUntil) || (len(p.st.Foreign) > 0 && time.Since(p.audited) >= p.auditEvery)
}

// auditClaims brings the pool's claims in line with claims, etcd's of
// its subnet: this host's claims etcd no longer has are forgotten
// (reclaimed while it was away); other hosts' claims inside its blocks
// that etcd no longer has are freed (their host released them); this
// host's claims that its state does not know (a claim whose answer was
// lost, a crash before the file was written) are deleted in etcd, each
// only if it is still this host's. Caller holds etcdMu, so that no claim
// of this pool is under way.
func (p *Pool) auditClaims(ctx context.Context, claims map[netip.Addr]string) error {
	p.mu.Lock()
	for a := range p.st.Claims {
		if claims[a] != p.c.host {
			delete(p.st.Claims, a)
			p.c.log.Warn("cluster: a claim of this host was reclaimed while it was away", "network", p.net, "addr", a, "still_used_by", p.extra[a])
		}
	}
	for a, h := range p.st.Foreign {
		if claims[a] != h {
			p.freeForeign(a)
		}
	}
	var unknown []netip.Addr
	for a, h := range claims {
		if h == p.c.host && !p.st.Claims[a] && !p.st.Pending[a] {
			unknown = append(unknown, a)
		}
	}
	err := p.st.write(p.file)
	p.mu.Unlock()
	for _, a := range unknown {
		key := claimKey(p.net, a)
		if _, err := p.c.txn(ctx, "give back "+a.String(), []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", p.c.host)},
			[]clientv3.Op{clientv3.OpDelete(key)}, nil); err != nil {
			return err
		}
		p.c.log.Info("cluster: gave back a claim of this host that its state did not record (its answer was lost)", "network", p.net, "addr", a)
	}
	p.mu.Lock()
	p.unsure, p.audited = false, time.Now()
	p.mu.Unlock()
	return err
}

// freeForeign forgets another host's claim a inside this host's block
// and frees the address there. Caller holds mu.
func (p *Pool) freeForeign(a netip.Addr) {
	if sp := p.blocks[p.blockOf(a)]; sp != nil {
		if o, ok := sp.Owner(a); ok && o == foreignOwner(p.st.Foreign[a]) {
			sp.Release(a)
		}
	}
	delete(p.st.Foreign, a)
}

// loseBlock forgets block b; what endpoints here hold in it moves to
// extra. After a removal cut short (suspect), a block with nothing held
// in it was most likely given back by that removal itself: not lost.
// Caller holds mu.
func (p *Pool) loseBlock(b netip.Prefix, suspect bool) {
	var kept []string
	for _, h := range p.blocks[b].Held() {
		if _, foreign := p.st.Foreign[h.Addr]; foreign {
			delete(p.st.Foreign, h.Addr)
			continue
		}
		if p.aside[h.Addr] { // no endpoint's: nothing to keep of it here
			delete(p.aside, h.Addr)
			continue
		}
		p.extra[h.Addr] = h.Owner
		kept = append(kept, h.Addr.String()+" "+h.Owner)
	}
	delete(p.blocks, b)
	p.st.Blocks = slices.DeleteFunc(p.st.Blocks, func(x netip.Prefix) bool { return x == b })
	if suspect && len(kept) == 0 {
		p.c.log.Info("cluster: a block this host held is no longer its own in etcd (given back by the removal that was cut short)", "network", p.net, "block", b)
		return
	}
	p.c.m.lost.Inc()
	p.c.log.Warn("cluster: a block this host held was reclaimed while it was away; the addresses its endpoints hold there stay theirs, no other is handed out here unless the block is leased again",
		"network", p.net, "block", b, "still_used_here", kept)
}
