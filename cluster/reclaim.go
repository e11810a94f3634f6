package cluster

import (
	"context"
	"net/netip"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prober returns which of addrs some host on the wire answers for (an
// ARP or ND probe out of the network's parent: package probe).
type Prober func(ctx context.Context, addrs []netip.Addr) ([]netip.Addr, error)

// holdings are the blocks and claims of a pool, by host, in etcd.
type holdings struct {
	blocks map[string][]netip.Prefix
	claims map[string][]netip.Addr
}

// Reclaim gives the blocks and claims of hosts that have had no liveness
// key for longer than the grace back to the pool (deletes them in etcd,
// so that the next lease takes them), but only those of which no usable
// address answers probe: a block or claim still in use on the wire stays
// its host's (it may be alive and cut off from etcd only). It returns
// how many blocks and claims it gave back.
func (p *Pool) Reclaim(ctx context.Context, probe Prober) (int, error) {
	hs, err := p.holdings(ctx)
	if err != nil {
		return 0, err
	}
	hosts := map[string]bool{}
	for h := range hs.blocks {
		hosts[h] = true
	}
	for h := range hs.claims {
		hosts[h] = true
	}
	dead, err := p.c.deadHosts(ctx, hosts)
	if err != nil {
		return 0, err
	}
	n := 0
	for h, epoch := range dead {
		k, err := p.reclaimHost(ctx, h, epoch, hs.blocks[h], hs.claims[h], probe)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// holdings reads the pool's blocks and claims of hosts other than this.
func (p *Pool) holdings(ctx context.Context) (holdings, error) {
	hs := holdings{blocks: map[string][]netip.Prefix{}, claims: map[string][]netip.Addr{}}
	v6 := p.rng.Addr().Is6()
	r, err := p.c.get(ctx, "list blocks of "+p.rng.String(), blocksDir(p.net), clientv3.WithPrefix())
	if err != nil {
		return hs, err
	}
	for _, kv := range r.Kvs {
		b, err := parseBlockKey(p.net, string(kv.Key), v6)
		if h := string(kv.Value); err == nil && h != p.c.host && b.Bits() == p.bits && p.rng.Contains(b.Addr()) {
			hs.blocks[h] = append(hs.blocks[h], b)
		}
	}
	r, err = p.c.get(ctx, "list claims of "+p.cfg.Subnet.String(), claimsDir(p.net), clientv3.WithPrefix())
	if err != nil {
		return hs, err
	}
	for _, kv := range r.Kvs {
		a, err := parseClaimKey(p.net, string(kv.Key), v6)
		if h := string(kv.Value); err == nil && h != p.c.host && p.cfg.Subnet.Contains(a) {
			hs.claims[h] = append(hs.claims[h], a)
		}
	}
	return hs, nil
}

// reclaimHost probes the addresses of dead host h's blocks and claims
// and gives back those of which none answered, while h is still dead in
// epoch.
func (p *Pool) reclaimHost(ctx context.Context, h string, epoch int64, blocks []netip.Prefix, claims []netip.Addr, probe Prober) (int, error) {
	var addrs []netip.Addr
	for _, b := range blocks {
		addrs = append(addrs, p.usable(b)...)
	}
	alone := slices.DeleteFunc(slices.Clone(claims), func(a netip.Addr) bool { return contains(blocks, a) })
	addrs = append(addrs, alone...)
	answered, err := probe(ctx, addrs)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, b := range blocks {
		if slices.ContainsFunc(answered, b.Contains) {
			if p.keep(b, h, epoch) {
				p.c.m.refused.WithLabelValues("block").Inc()
				p.c.log.Warn("cluster: not reclaiming a dead host's block: addresses in it answer a probe", "network", p.net, "host", h, "block", b, "answering", inside(answered, b))
			}
			continue
		}
		in := slices.DeleteFunc(slices.Clone(claims), func(a netip.Addr) bool { return !b.Contains(a) })
		ok, err := p.giveBack(ctx, h, epoch, blockKey(p.net, b), in)
		if err != nil {
			return n, err
		}
		if ok {
			n++
			p.forgetKept(b)
			p.c.m.reclaimed.WithLabelValues("block").Inc()
			p.c.m.reclaimed.WithLabelValues("claim").Add(float64(len(in))) // given back with it
			p.c.log.Info("cluster: reclaimed a dead host's block", "network", p.net, "host", h, "block", b, "claims", len(in))
		}
	}
	for _, a := range alone {
		if slices.Contains(answered, a) {
			if p.keep(netip.PrefixFrom(a, a.BitLen()), h, epoch) {
				p.c.m.refused.WithLabelValues("claim").Inc()
				p.c.log.Warn("cluster: not reclaiming a dead host's claim: the address answers a probe", "network", p.net, "host", h, "addr", a)
			}
			continue
		}
		ok, err := p.giveBack(ctx, h, epoch, "", []netip.Addr{a})
		if err != nil {
			return n, err
		}
		if ok {
			n++
			p.forgetKept(netip.PrefixFrom(a, a.BitLen()))
			p.c.m.reclaimed.WithLabelValues("claim").Inc()
			p.forgetForeign(a, h)
		}
	}
	return n, nil
}

// keptFor is the dead host, and its epoch, whose block or claim reclaim
// kept.
type keptFor struct {
	host  string
	epoch int64
}

// keep records that b (a block, or a claim as a host prefix) of dead host
// h in epoch answered a probe, and reports whether that is news: while
// its addresses keep answering, the next ticks count and warn no more; a
// host back and dead again (another epoch) is news again.
func (p *Pool) keep(b netip.Prefix, h string, epoch int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := keptFor{h, epoch}
	if p.kept[b] == k {
		return false
	}
	p.kept[b] = k
	return true
}

// forgetKept forgets b once it is given back.
func (p *Pool) forgetKept(b netip.Prefix) {
	p.mu.Lock()
	delete(p.kept, b)
	p.mu.Unlock()
}

// giveBack deletes block key bk (unless empty) and the claims of h,
// provided all are still h's and h is still dead in epoch (stillDead).
func (p *Pool) giveBack(ctx context.Context, h string, epoch int64, bk string, claims []netip.Addr) (bool, error) {
	cmp := stillDead(h, epoch)
	var ops []clientv3.Op
	keys := make([]string, 0, len(claims)+1)
	if bk != "" {
		keys = append(keys, bk)
	}
	for _, a := range claims {
		keys = append(keys, claimKey(p.net, a))
	}
	for _, k := range keys {
		cmp = append(cmp, clientv3.Compare(clientv3.Value(k), "=", h))
		ops = append(ops, clientv3.OpDelete(k))
	}
	r, err := p.c.txn(ctx, "reclaim from host "+h, cmp, ops, nil)
	if err != nil {
		return false, err
	}
	return r.Succeeded, nil
}

// usable are the addresses of block b an allocation could hand out
// (not the subnet's network, broadcast, gateway or aux addresses).
func (p *Pool) usable(b netip.Prefix) []netip.Addr {
	sp, err := p.newBlock(b)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for {
		a, err := sp.Allocate(b.Addr().Is6(), "probe")
		if err != nil {
			return out
		}
		out = append(out, a.Addr())
	}
}

// forgetForeign frees a, a reclaimed claim of host h inside a block this
// host holds.
func (p *Pool) forgetForeign(a netip.Addr, h string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.Foreign[a] != h {
		return
	}
	p.freeForeign(a)
	_ = p.st.write(p.file)
}

func contains(bs []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(bs, func(b netip.Prefix) bool { return b.Contains(a) })
}

func inside(as []netip.Addr, b netip.Prefix) []netip.Addr {
	return slices.DeleteFunc(slices.Clone(as), func(a netip.Addr) bool { return !b.Contains(a) })
}
