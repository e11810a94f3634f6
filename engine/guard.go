package engine

import (
	"context"
	"sync"
	"time"

	"github.com/mvlan/mvlan/link"
)

// The tamper check looks at an endpoint when something may have changed
// it, not at every endpoint every time:
//   - its namespace's link and tc notifications (a nested macvlan, a MAC
//     changed, a qdisc or filter deleted) reach one listener in the host's
//     namespace (link.Host.WatchNetns), which marks the namespace;
//   - a tc program the datapath did not load, or a program attached to
//     a TCX hook by another process (loader WatchTCX: a TCX attach sends
//     no notification, and its program may have been loaded long
//     before), has every endpoint's TCX hooks screened (one query each),
//     and those that fail looked at;
//   - an endpoint made ready is looked at once, freshDelay after
//     (guardfresh.go), and one the check sees for the first time
//     otherwise (adopted on start, a Docker hand-off) at that check;
//   - a rolling pass looks at each namespace once in guardRounds checks (more on a big host)
//     (by its inode), about 1/guardRounds of them per check, whatever happens
//     (what the others miss: an attach WatchTCX cannot see).
// A check with nothing marked costs a walk of the index, no system call
// per endpoint.

// guardRounds: the rolling pass covers every endpoint in this many checks,
// or more on a host with over guardRounds*guardBatch endpoints: it looks at
// about guardBatch per check, so that its cost per check does not grow
// with the host.
const (
	guardRounds = 60
	guardBatch  = 8
)

// guardState is the guard's view of the ready endpoints, by namespace.
type guardState struct {
	nsid   map[uint64]int    // namespace inode -> its ID in the host's
	byID   map[int]uint64    // the reverse
	marked map[uint64]bool   // namespaces with a notification since the last check
	all    bool              // look at every endpoint (an overflow)
	tcx    bool              // screen every endpoint's TCX hooks (a tc program was loaded)
	looked map[string]uint64 // ready endpoints (ID -> namespace inode) as of the last check
	tick   uint64
}

// heard is what the listener heard since the last check: the IDs of the
// namespaces that sent notifications, as a set, so that a namespace that
// sends thousands (a container making links in a loop) takes one entry
// and crowds out no other's.
type heard struct {
	mu       sync.Mutex
	ids      map[int]bool
	gone     map[int]bool // IDs of namespaces destroyed (RTM_DELNSID)
	overflow bool         // the kernel dropped notifications
	blind    bool         // no listener: every check looks at everything
}

func (h *heard) add(ev link.NetnsEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ev.Overflow {
		h.overflow = true
		return
	}
	if ev.Gone {
		if h.gone == nil {
			h.gone = map[int]bool{}
		}
		h.gone[ev.NSID] = true
		return
	}
	if h.ids == nil {
		h.ids = map[int]bool{}
	}
	h.ids[ev.NSID] = true
}

// take hands what was heard to g and starts over. It returns the inodes
// of the namespaces heard gone, for the sweep to look at.
func (h *heard) take(g *guardState) (gone []uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.overflow || h.blind {
		g.note(link.NetnsEvent{Overflow: true})
	}
	for id := range h.ids {
		g.note(link.NetnsEvent{NSID: id})
	}
	// The ID's inode is only looked at by the sweep: a freed ID can be
	// given again (the kernel's own IDs are the lowest free; mvlan's,
	// link/nsid.go, after a wrap), maybe to a live namespace since the
	// notification was queued, so the mapping stays; forget drops it
	// once no ready endpoint is there.
	for id := range h.gone {
		if ino, ok := g.byID[id]; ok {
			gone = append(gone, ino)
		}
	}
	clear(h.ids)
	clear(h.gone)
	h.overflow = false
	return gone
}

// watchRetry is the wait before the namespace listener is opened again
// after it failed; it doubles, up to watchRetryMax, while it keeps failing.
var watchRetry, watchRetryMax = time.Second, time.Minute

// listenNetns hands the namespaces' link notifications to h until ctx is
// done. A listener that fails (a socket error other than an overflow) is
// opened again after watchRetry, doubling while it keeps failing; until
// then h is blind (every check looks at every endpoint), and the first
// check after it is back looks at every endpoint once (what was missed).
func (a *Engine) listenNetns(ctx context.Context, h *heard) {
	wait := watchRetry
	for {
		start := time.Now()
		err := a.host.WatchNetns(ctx, func() {
			// From here on nothing is missed; what went before is
			// looked at once, by the next sweep and the next check.
			a.sweeper.listen(true)
			a.sweeper.lookAll()
			h.setBlind(false)
		}, h.add)
		a.sweeper.listen(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > watchRetryMax {
			wait = watchRetry // it had worked for a while
		}
		a.log.Warn("tamper check: no namespace notifications; every endpoint is checked each time until the listener is back", "err", err, "retry_in", wait)
		h.setBlind(true)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, watchRetryMax)
	}
}

// setBlind marks h as without a listener, or with one again: then what
// was missed meanwhile counts as an overflow.
func (h *heard) setBlind(blind bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.overflow = h.overflow || h.blind && !blind
	h.blind = blind
}

// guard checks endpoints for tampering each interval until ctx is done.
func (a *Engine) guard(ctx context.Context, interval time.Duration) {
	g := &guardState{nsid: map[uint64]int{}, byID: map[int]uint64{}, marked: map[uint64]bool{}, looked: map[string]uint64{}}
	h := &heard{blind: true} // until the listener is subscribed
	go a.listenNetns(ctx, h)
	if err := a.dp.WatchTCX(); err != nil {
		a.log.Warn("tamper check: a program loaded before it is attached ahead of mvlan's with TCX is found by the rolling pass only", "err", err)
	}
	kick := a.fresh.start()
	defer a.fresh.stop()
	t := time.NewTicker(interval)
	defer t.Stop()
	var soon <-chan time.Time // armed by a kick: the fresh endpoints' turn
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			if soon == nil {
				soon = time.After(freshDelay)
			}
		case <-soon:
			soon = nil
			a.guardFresh(ctx, g)
		case <-t.C:
			for _, ino := range h.take(g) {
				a.sweeper.heardGone(ino) // its endpoints are released in the next sweep
			}
			if g.all { // notifications lost: namespaces gone among them, maybe
				a.sweeper.lookAll()
			}
			loaded, attached := a.dp.ForeignPrograms(), a.dp.ForeignAttaches()
			if attached {
				a.log.Debug("tamper check: another process attached a program to a TCX hook or detached one; every endpoint's TCX hooks are screened")
			}
			g.tcx = loaded || attached
			a.guardCheck(ctx, g)
		}
	}
}

func (g *guardState) note(ev link.NetnsEvent) {
	if ev.Overflow {
		g.all = true
		return
	}
	if ino, ok := g.byID[ev.NSID]; ok {
		g.marked[ino] = true
	}
}

// guardCheck looks at the endpoints marked, new or due, and forgets
// those that are gone.
func (a *Engine) guardCheck(ctx context.Context, g *guardState) {
	var eps []endpoint
	for _, n := range a.networkList() {
		eps = append(eps, a.readyEndpoints(n)...)
	}
	g.tick++
	rounds := uint64(max(guardRounds, (len(eps)+guardBatch-1)/guardBatch))
	now := make(map[string]uint64, len(eps))
	var again []uint64 // busy, or a repair that did not hold: looked at next time
	for _, e := range eps {
		_, known := g.looked[e.ID]
		// Each namespace has its turn in the rolling pass: one check in
		// rounds, whatever else made the guard look at it.
		rolling := e.NetnsInode%rounds == g.tick%rounds
		if _, heard := g.nsid[e.NetnsInode]; !known || rolling && !heard {
			a.guardRegister(g, e) // new, or it got no ID then
		}
		screened := g.tcx && a.dp.TCXTampered(ctx, e.Netns, e.NetnsCookie, e.Ifindex)
		if (g.all || !known || g.marked[e.NetnsInode] || rolling || screened) && !a.inspectEndpoint(ctx, e) {
			again = append(again, e.NetnsInode)
		}
		now[e.ID] = e.NetnsInode
	}
	for id := range g.looked {
		if _, ok := now[id]; !ok {
			a.tamper.drop(id) // gone, or no longer ready
		}
	}
	g.forget(now)
	g.looked, g.all = now, false
	clear(g.marked)
	for _, ino := range again {
		g.marked[ino] = true
	}
}

// guardRegister gives e's namespace an ID in the host's, so that its
// notifications are heard from now on. It asks even when the inode has
// one: the kernel gives a new namespace the inode of one that is gone
// (the lowest free number), often within one check, and the new one has
// no ID yet or another.
func (a *Engine) guardRegister(g *guardState, e endpoint) {
	id, err := a.host.NetnsID(e.Netns)
	if err != nil {
		a.log.Debug("tamper check: no namespace ID; the endpoint is looked at in the rolling pass only", "endpoint", e.Name, "err", err)
		return
	}
	if old, ok := g.nsid[e.NetnsInode]; ok && old != id && g.byID[old] == e.NetnsInode {
		delete(g.byID, old) // the gone namespace's ID, under the same inode
	}
	if old, ok := g.byID[id]; ok && old != e.NetnsInode {
		delete(g.nsid, old) // the ID of a namespace that is gone, given again
		a.sweeper.heardGone(old)
	}
	g.nsid[e.NetnsInode], g.byID[id] = id, e.NetnsInode
}

// forget drops the namespaces no ready endpoint is in any more.
func (g *guardState) forget(now map[string]uint64) {
	live := make(map[uint64]bool, len(now))
	for _, ino := range now {
		live[ino] = true
	}
	for ino, id := range g.nsid {
		if !live[ino] {
			delete(g.nsid, ino)
			delete(g.byID, id)
		}
	}
}
