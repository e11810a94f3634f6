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
		if err := p.giveBackBlock(ctx, b, now); err != nil {
			p.c.log.Warn("cluster: an empty block was taken out of this host's; etcd's answer to its give-back is unknown (the key, if still there, is taken up again once a late delete can no longer land)", "network", p.name, "block", b, "err", err)
			return
		}
	}
}

// idleBlocks notes when each held block was first found empty (a
// release or an exact claim in it since starts that over) and
// returns, lowest first, those empty since blockIdle, leaving one block.
// A pool closed or not yet verified gives nothing back, nor one of a host
// whose state may not know every endpoint (KeepBlocks).
func (p *Pool) idleBlocks(now time.Time) []netip.Prefix {
	p.mu.Lock()
	defer p.mu.Unlock()
	for b := range p.emptySince {
		if p.blocks[b] == nil {
			delete(p.emptySince, b)
		}
	}
	var idle []netip.Prefix
	for b := range p.blocks {
		since, seen := p.emptySince[b]
		switch {
		case !p.empty(b):
			delete(p.emptySince, b)
		case !seen:
			p.emptySince[b] = now
		case now.Sub(since) >= blockIdle:
			idle = append(idle, b)
		}
	}
	if p.closed || p.suspect.Load() || p.c.keepBlocks.Load() {
		return nil
	}
	slices.SortFunc(idle, comparePrefix)
	if len(idle) > 0 && len(idle) == len(p.blocks) {
		idle = idle[1:] // the host keeps one: its next container needs no etcd
	}
	return idle
}

// empty reports whether held block b holds no address: none handed out,
// set aside or claimed by another host in its space, and none of this
// host's endpoints' kept outside it (extra: another host's claim refused
// it there). Caller holds mu.
func (p *Pool) empty(b netip.Prefix) bool {
	for _, u := range p.blocks[b].Usage() {
		if u.Used > 0 {
			return false
		}
	}
	for a := range p.extra {
		if b.Contains(a) {
			return false
		}
	}
	return true
}

// giveBackBlock gives back block b: it is no longer this host's, in
// memory and in the host's file (first: a crash after the delete must
// not start with it held), then its key is deleted if still this host's.
// Once out it is never held again on an unknown answer: a delete that
// lands late would leave it used here and leased by another host. Its
// key, if still there, is taken up again (lost, adopt) once such a
// delete can no longer land (returning, landLate).
func (p *Pool) giveBackBlock(ctx context.Context, b netip.Prefix, now time.Time) error {
	p.mu.Lock()
	sp := p.blocks[b]
	since, idle := p.emptySince[b]
	if sp == nil || !p.empty(b) || p.closed || !idle || now.Sub(since) < blockIdle {
		p.mu.Unlock()
		return nil // used, or about to be (touchHeld, hasFree), since idleBlocks
	}
	delete(p.blocks, b)
	delete(p.emptySince, b)
	blocks := p.st.Blocks
	p.st.Blocks = slices.DeleteFunc(slices.Clone(blocks), func(x netip.Prefix) bool { return x == b })
	if err := p.st.write(p.file); err != nil {
		p.blocks[b], p.st.Blocks = sp, blocks
		p.mu.Unlock()
		p.c.log.Warn("cluster: an empty block kept: this host's cluster file cannot be written", "network", p.name, "block", b, "err", err)
		return nil
	}
	p.returning[b] = now
	p.mu.Unlock()
	key := blockKey(p.net, b)
	r, err := p.c.txn(ctx, "give back block "+b.String(),
		[]clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", p.c.host)}, []clientv3.Op{clientv3.OpDelete(key)}, nil)
	if err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.returning, b)
	p.mu.Unlock()
	if r.Succeeded { // else not this host's any more: reclaimed while it was away
		p.c.m.gaveBack.Inc()
		p.c.log.Info("cluster: an empty block given back", "network", p.name, "block", b, "idle", blockIdle)
	}
	return nil
}

// touchHeld reports whether the host holds block b, and if so has it
// count as used now (not idle): an exact address in it is about to be
// taken (Claim, then Take).
func (p *Pool) touchHeld(b netip.Prefix) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.emptySince, b)
	return p.blocks[b] != nil
}

// mayAdopt reports whether a block etcd has as this host's that the host
// does not hold may be taken up: not while a give-back of it whose answer
// was lost may still land. Caller holds mu.
func (p *Pool) mayAdopt(b netip.Prefix, now time.Time) bool {
	sent, ok := p.returning[b]
	if ok && now.Sub(sent) < landLate {
		return false
	}
	delete(p.returning, b)
	return true
}

// KeepBlocks has no pool give a block back while this agent runs: its
// state may not know every endpoint (replaced, or with quarantined
// records), and a block that looks empty may have containers on it.
func (c *Client) KeepBlocks() { c.keepBlocks.Store(true) }
