package cluster

// Giving blocks back: a block this host holds that has held no address
// for blockIdle goes back to etcd (its key deleted, if it is still this
// host's), as long as the host keeps another block of the range. Hosts
// come and go, and a block kept for ever by a host that once ran many
// containers (or one container each on many hosts) would leave a network
// with free addresses and no block for the next host: a /24 has sixteen
// /28s.

import (
	"context"
	"net/netip"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// blockIdle is how long a held block stays empty before it is given back.
var blockIdle = 5 * time.Minute

// giveBackIdle gives back the blocks empty since blockIdle, all but one
// of those the host holds. Caller holds etcdMu.
func (p *Pool) giveBackIdle(ctx context.Context, now time.Time) {
	for _, b := range p.idleBlocks(now) {
		if err := p.giveBackBlock(ctx, b); err != nil {
			p.c.log.Debug("cluster: an empty block not given back; the next check tries again", "network", p.name, "block", b, "err", err)
			return
		}
	}
}

// idleBlocks notes when each held block was first found empty and
// returns, lowest first, those empty since blockIdle, leaving one block.
// A pool closed or not yet verified gives nothing back.
func (p *Pool) idleBlocks(now time.Time) []netip.Prefix {
	p.mu.Lock()
	defer p.mu.Unlock()
	for b := range p.emptySince {
		if p.blocks[b] == nil || !p.empty(b) {
			delete(p.emptySince, b)
		}
	}
	if p.closed || p.suspect.Load() || len(p.blocks) < 2 {
		return nil
	}
	var idle []netip.Prefix
	for b := range p.blocks {
		since, seen := p.emptySince[b]
		switch {
		case !p.empty(b):
		case !seen:
			p.emptySince[b] = now
		case now.Sub(since) >= blockIdle:
			idle = append(idle, b)
		}
	}
	slices.SortFunc(idle, comparePrefix)
	if len(idle) == len(p.blocks) {
		idle = idle[1:] // the host keeps one: its next container needs no etcd
	}
	return idle
}

// empty reports whether held block b holds no address (none handed out,
// set aside or claimed by another host). Caller holds mu.
func (p *Pool) empty(b netip.Prefix) bool {
	for _, u := range p.blocks[b].Usage() {
		if u.Used > 0 {
			return false
		}
	}
	return true
}

// giveBackBlock deletes block b's key if it is still this host's. Nothing is
// handed out of b from the moment it is checked empty; when etcd does not
// answer, b is held again (a delete that landed all the same makes it
// missing there, which the next lease puts back or loses).
func (p *Pool) giveBackBlock(ctx context.Context, b netip.Prefix) error {
	p.mu.Lock()
	sp := p.blocks[b]
	if sp == nil || !p.empty(b) || p.closed {
		p.mu.Unlock()
		return nil
	}
	delete(p.blocks, b)
	delete(p.emptySince, b)
	p.mu.Unlock()
	key := blockKey(p.net, b)
	_, err := p.c.txn(ctx, "give back block "+b.String(),
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", p.c.host)}, []clientv3.Op{clientv3.OpDelete(key)}, nil)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.blocks[b] = sp
		return err
	}
	// Deleted, or no longer this host's (reclaimed while it was away):
	// not held here either way.
	p.st.Blocks = slices.DeleteFunc(p.st.Blocks, func(x netip.Prefix) bool { return x == b })
	p.c.m.gaveBack.Inc()
	p.c.log.Info("cluster: an empty block given back", "network", p.name, "block", b, "idle", blockIdle)
	return p.st.write(p.file)
}
