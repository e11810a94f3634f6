package cluster

import (
	"context"
	"net/netip"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// verify drops the blocks and claims etcd no longer has as this host's:
// reclaimed while it was away (liveness.go). Addresses its endpoints
// still have in them stay held here, outside any block, so that this
// host never hands them out again; a warning names them.
func (p *Pool) verify(ctx context.Context) error {
	p.etcdMu.Lock()
	defer p.etcdMu.Unlock()
	if p.c.Gone(p.net) != nil {
		return nil // nothing of it is handed out any more
	}
	v6 := p.rng.Addr().Is6()
	mine := map[netip.Prefix]bool{}
	r, err := p.c.get(ctx, "check blocks of "+p.rng.String(), blocksDir(p.net), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, kv := range r.Kvs {
		if b, err := parseBlockKey(p.net, string(kv.Key), v6); err == nil && string(kv.Value) == p.c.host {
			mine[b] = true
		}
	}
	claimed := map[netip.Addr]bool{}
	r, err = p.c.get(ctx, "check claims of "+p.cfg.Subnet.String(), claimsDir(p.net), clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, kv := range r.Kvs {
		if a, err := parseClaimKey(p.net, string(kv.Key), v6); err == nil && string(kv.Value) == p.c.host {
			claimed[a] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for b := range p.blocks {
		if !mine[b] {
			p.loseBlock(b)
		}
	}
	for a := range p.st.Claims {
		if !claimed[a] {
			delete(p.st.Claims, a)
			p.c.log.Warn("cluster: a claim of this host was reclaimed while it was away", "network", p.net, "addr", a, "still_used_by", p.extra[a])
		}
	}
	return p.st.write(p.file)
}

// loseBlock forgets block b; what endpoints here hold in it moves to
// extra. Caller holds mu.
func (p *Pool) loseBlock(b netip.Prefix) {
	var kept []string
	for _, h := range p.blocks[b].Held() {
		if _, foreign := p.st.Foreign[h.Addr]; foreign {
			delete(p.st.Foreign, h.Addr)
			continue
		}
		p.extra[h.Addr] = h.Owner
		kept = append(kept, h.Addr.String()+" "+h.Owner)
	}
	delete(p.blocks, b)
	p.st.Blocks = slices.DeleteFunc(p.st.Blocks, func(x netip.Prefix) bool { return x == b })
	p.c.m.lost.Inc()
	p.c.log.Warn("cluster: a block this host held was reclaimed while it was away; no address of it is handed out here any more",
		"network", p.net, "block", b, "still_used_here", kept)
}
