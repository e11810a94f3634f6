package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/loader"
)

// sweepEvery is how often the engine looks for namespaces that went away.
const sweepEvery = 500 * time.Millisecond

// watch releases endpoints whose namespace disappeared (the container
// died, `ip netns del`) until ctx is done.
func (a *Engine) watch(ctx context.Context) { every(ctx, sweepEvery, a.sweep) }

// every calls fn each interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// sweepBatch is about how many namespaces one sweep looks at closely
// (netnsSame: the cookie too, which may mean entering the namespace):
// the sweep is a rolling pass, each namespace looked at so once every
// max(1, ready/sweepBatch) sweeps, so that its cost per sweep does not
// grow with the host. A namespace the guard hears go (RTM_DELNSID) is
// looked at closely in the next sweep, whatever its turn.
const sweepBatch = 64

// sweeper is the sweep's state: its turn and the namespaces heard gone.
type sweeper struct {
	mu    sync.Mutex
	gone  map[uint64]bool // namespace inodes heard gone since the last sweep
	tick  uint64
	ready int // ready endpoints at the last sweep
	// listening: the guard hears namespaces go (RTM_DELNSID). Without it
	// (--tamper-check 0, or no listener) the sweep also looks at every
	// namespace's inode each time, as it did before the rolling pass.
	listening bool
	all       bool // the next sweep looks at every namespace's inode (notifications were lost)
}

// look is how closely a sweep looks at a namespace.
type look uint8

const (
	lookSkip   look = iota // not this time
	lookInode              // a namespace with its inode at its path (netnsAlive)
	lookCookie             // and the same one, by its cookie (netnsSame)
)

// lookAll has the next sweep look at every namespace: the listener lost
// notifications (an overflow), RTM_DELNSID ones among them maybe.
func (s *sweeper) lookAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = true
}

// listen records whether namespaces heard gone reach heardGone.
func (s *sweeper) listen(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listening = on
}

// heardGone has the next sweep look at the endpoints in namespace ino.
func (s *sweeper) heardGone(ino uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone == nil {
		s.gone = map[uint64]bool{}
	}
	s.gone[ino] = true
}

// turn says how this sweep looks at each namespace: closely at those
// heard gone and those whose turn it is; by the inode at the others when
// the namespaces' going may have gone unheard; else not at all.
func (s *sweeper) turn() func(ino uint64) look {
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := s.gone
	s.gone = nil
	everyInode := !s.listening || s.all
	s.all = false
	s.tick++
	rounds := uint64(max(1, (s.ready+sweepBatch-1)/sweepBatch))
	tick := s.tick
	return func(ino uint64) look {
		switch {
		case gone[ino] || ino%rounds == tick%rounds:
			return lookCookie
		case everyInode:
			return lookInode
		}
		return lookSkip
	}
}

// sweep forgets ready endpoints whose namespace is gone or replaced (made
// again at its path: it may have the old one's inode, see netnsSame), as
// turn says to look. It reads the index, not the store, and holds no lock
// while it looks at the namespaces. Then it has the datapath forget what
// removals kept of links that are gone now (ForgetLingering).
func (a *Engine) sweep(ctx context.Context) {
	how := a.sweeper.turn()
	ready := 0
	for _, n := range a.networkList() {
		n.mu.Lock()
		var ens []*entry
		var eps []endpoint
		for _, en := range n.eps {
			if en.ep.State != Ready {
				continue
			}
			ready++
			if how(en.ep.NetnsInode) != lookSkip {
				ens, eps = append(ens, en), append(eps, en.ep)
			}
		}
		n.mu.Unlock()
		for i, en := range ens {
			alive := a.netnsAlive
			if how(eps[i].NetnsInode) == lookCookie {
				alive = a.netnsSame
			}
			if !alive(eps[i]) {
				a.releaseVanished(ctx, n, en, alive)
			}
		}
	}
	a.sweeper.mu.Lock()
	a.sweeper.ready = ready
	a.sweeper.mu.Unlock()
	// Whether or not the guard runs (--tamper-check 0): no system call
	// unless a removal kept something.
	if _, err := a.dp.ForgetLingering(); err != nil {
		a.log.Debug("forget the programs of links gone since their removal", "err", err)
	}
}

// releaseVanished releases en if, looked at again under its lock, it is
// still ready and its namespace still gone (by alive, as the sweep
// judged it): a concurrent rm may have released it (and its address been
// handed out again) since the sweep read.
func (a *Engine) releaseVanished(ctx context.Context, n *network, en *entry, alive func(endpoint) bool) {
	crashpoint.Hit("sweep:before-release") // a test holds the sweep here: what comes before it
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok || e.State != Ready || alive(e) {
		return
	}
	if err := a.undoEndpoint(ctx, n, en, e); err != nil {
		a.log.Warn("release endpoint of a vanished namespace", "name", e.Name, "err", err)
		return
	}
	n.noteGoing(e.MAC, time.Now())
	a.log.Info("released endpoint: its namespace is gone", "name", e.Name, "netns", e.Netns)
}

// noteGoing records that mac's link may stay on n's parent for up to
// macGoingWait from now: its namespace is gone, the kernel destroys it in
// the background. Entries past their time go as one is added.
func (n *network) noteGoing(mac net.HardwareAddr, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for m, until := range n.goingMACs {
		if now.After(until) {
			delete(n.goingMACs, m)
		}
	}
	if n.goingMACs == nil {
		n.goingMACs = map[string]time.Time{}
	}
	n.goingMACs[string(mac)] = now.Add(macGoingWait)
}

// macGoing reports whether mac was an endpoint's released with its
// namespace gone less than macGoingWait ago (noteGoing): an attach with it
// waits for the parent to let go of it (endpoint.macWait).
func (n *network) macGoing(mac net.HardwareAddr, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	until, ok := n.goingMACs[string(mac)]
	return ok && now.Before(until)
}

// netnsAlive reports whether e's path names a namespace with e's inode.
func (a *Engine) netnsAlive(e endpoint) bool {
	ino, err := a.ns.Check(e.Netns)
	return err == nil && ino == e.NetnsInode
}

// netnsSame is netnsAlive made sure by the namespace's cookie, which the
// kernel never gives again, for where the inode may mislead: the kernel
// gives a new namespace the lowest free inode number, so one made again
// at e's path (ip netns del, ip netns add: a runtime's sandbox made again
// under its name) often has the inode of e's, gone. It costs a look at
// the cookie (an entry into the namespace on kernels before 6.18), so it
// is asked where the answer matters, and of a bounded batch per sweep: a
// namespace heard gone or whose turn it is, a repeated CNI ADD, the
// start, doctor, the tamper check and a removal (which touch nothing in
// a namespace that is not e's). An endpoint whose keys are not its
// namespace's (a hand-off) or that has no cookie is judged by its inode,
// and so is one whose cookie cannot be read (a wrong release costs more
// than a late one).
func (a *Engine) netnsSame(e endpoint) bool {
	if !a.netnsAlive(e) {
		return false
	}
	if e.NetnsCookie == 0 || isHandoff(e) || a.hostKeyed(e) {
		return true
	}
	c, err := a.ns.Cookie(e.Netns)
	return err != nil || c == e.NetnsCookie
}

// reconcileEndpoints, on start: adopts endpoints caught "creating" whose
// kernel side is complete (see completeIn), undoes those caught half made
// or half removed, forgets those whose namespace is gone (and those whose network
// is, the orphans), and re-attaches the link of those whose namespace lost
// it. Caller holds netOps, before any front end is served.
func (a *Engine) reconcileEndpoints(ctx context.Context, orphans []endpoint) error {
	for _, e := range orphans {
		a.release(ctx, nil, nil, e, "its network is gone")
	}
	type job struct {
		n  *network
		en *entry
	}
	var jobs []job
	for _, n := range a.networkList() {
		n.mu.Lock()
		for _, en := range n.eps {
			jobs = append(jobs, job{n, en})
		}
		n.mu.Unlock()
	}
	// Each endpoint is checked on its own (its own namespace, link and
	// lock), so several at once: what the kernel calls wait for overlaps.
	kept := make([]*endpoint, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(reconcileWorkers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(jobs); i = int(next.Add(1) - 1) {
				if e, ok := a.reconcileEndpoint(ctx, jobs[i].n, jobs[i].en); ok {
					kept[i] = &e
				}
			}
		}()
	}
	wg.Wait()
	var all []endpoint
	for _, e := range kept {
		if e != nil {
			all = append(all, *e)
		}
	}
	return a.pruneEndpointTable(all)
}

// reconcileWorkers is how many endpoints are reconciled at once on start.
const reconcileWorkers = 8

// reconcileEndpoint settles one endpoint at start; it reports the endpoint
// if it stays.
func (a *Engine) reconcileEndpoint(ctx context.Context, n *network, en *entry) (endpoint, bool) {
	e, _ := n.current(en)
	if e.State == Creating {
		if k, whole := a.completeIn(n, e); whole {
			return a.adopt(ctx, n, en, e, k), true
		}
	}
	switch {
	case e.State != Ready:
		e = a.settleLease(ctx, n, e)
		return e, !a.release(ctx, n, en, e, "caught "+e.State.String()+" by a restart")
	case a.keepAttached(ctx, n, e): // its namespace is alive: it has e's cookie
		return e, true
	case !a.netnsSame(e):
		return e, !a.release(ctx, n, en, e, "its namespace is gone")
	}
	e, _ = a.reattach(ctx, n, en, e)
	return e, true
}

// reattach makes e's link again if its namespace lost it (ensureLink) and
// puts it in the datapath. A failure is logged and e kept: the namespace
// and its address are the user's; doctor reports the drift, a later
// start or parent refresh may fix it. Caller holds en.busy.
func (a *Engine) reattach(ctx context.Context, n *network, en *entry, e endpoint) (endpoint, error) {
	idx, err := a.ensureLink(ctx, n, &e)
	if err == nil {
		err = a.storeUnrouted(n, en, e)
	}
	if err == nil {
		e, err = a.attachEndpointDP(ctx, n, en, e, idx)
	}
	if err != nil {
		a.log.Warn("endpoint not attached", "name", e.Name, "network", n.name(), "err", err)
	}
	return e, err
}

// release undoes e at start and logs why; it reports whether it did.
func (a *Engine) release(ctx context.Context, n *network, en *entry, e endpoint, why string) bool {
	if err := a.undoEndpoint(ctx, n, en, e); err != nil {
		a.log.Warn("cannot release endpoint", "name", e.Name, "err", err)
		return false
	}
	a.log.Info("released endpoint", "name", e.Name, "reason", why)
	return true
}

// ensureLink re-creates e's link if its namespace lost it, and returns the
// ifindex of the link it found or made. A link it makes is in the
// datapath (table entry, programs) before it comes up, as in realize, and
// e's unrouted gateways are what its making found.
func (a *Engine) ensureLink(ctx context.Context, n *network, e *endpoint) (int, error) {
	if idx, err := a.findSlave(*e); err != nil || idx != 0 {
		return idx, err
	}
	n.mu.Lock()
	ok := n.ok()
	n.mu.Unlock()
	if !ok {
		return 0, errors.New("its network cannot take endpoints")
	}
	// A start killed while it made the link again left it half made (its
	// name and MAC, no mark): it would refuse the name for good.
	if err := a.host.DeleteBorn(e.Netns, e.IfName, e.MAC); err != nil {
		return 0, fmt.Errorf("re-attach: %w", err)
	}
	spec := a.endpointSpec(n, *e)
	var keyed endpoint // e as attached (BeforeUp), with the new link's keys
	spec.BeforeUp = func(idx int) error {
		keyed = *e
		return a.attachEndpointAt(ctx, n, &keyed, idx, 0)
	}
	var unrouted []netip.Addr
	spec.RouteKept = func(gw netip.Addr) { unrouted = append(unrouted, gw) }
	if err := a.host.AttachEndpoint(ctx, spec); err != nil {
		return 0, fmt.Errorf("re-attach: %w", err)
	}
	e.Unrouted = unrouted
	a.log.Info("re-attached endpoint", "name", e.Name, "netns", e.Netns)
	a.forgetGone(*e, keyed)
	return keyed.Ifindex, nil
}

// forgetGone forgets what the datapath attached to e's link that went
// (its keys, before the link made again, now's): its attachments, TCX
// pins and its hold on the namespace's stubs, which would otherwise stay
// until the agent's next start, after the container too.
func (a *Engine) forgetGone(e, now endpoint) {
	if e.Ifindex == 0 || e.NetnsCookie != now.NetnsCookie || e.Ifindex == now.Ifindex {
		// Nothing was attached; another namespace's keys (not e's
		// attachments); or the new link's keys are the same.
		return
	}
	if err := a.dp.ForgetEndpoint(e.NetnsCookie, e.Ifindex); err != nil {
		a.log.Warn("re-attach: the gone link's attachments are kept until the next start", "endpoint", e.Name, "ifindex", e.Ifindex, "err", err)
	}
}

// storeUnrouted records e's unrouted gateways, in the index and on disk,
// when a re-made link changed them: should the datapath's attach fail
// next, the start after this one finds the link and keeps the record's.
func (a *Engine) storeUnrouted(n *network, en *entry, e endpoint) error {
	cur, ok := n.current(en)
	if !ok || slices.Equal(cur.Unrouted, e.Unrouted) {
		return nil
	}
	cur.Unrouted = e.Unrouted
	if err := a.store.UpdateEndpoint(cur.api()); err != nil {
		return fmt.Errorf("store endpoint %s: %w", e.Name, err)
	}
	n.mu.Lock()
	n.set(en, cur)
	n.mu.Unlock()
	return nil
}

// attachEndpointDP (re)attaches a ready endpoint's programs at start, to
// its link at ifindex idx (0: find it), and records its keys if they
// changed (a re-created link has a new ifindex).
func (a *Engine) attachEndpointDP(ctx context.Context, n *network, en *entry, e endpoint, idx int) (endpoint, error) {
	before := e
	mode := a.restartMode(e)
	attach := func() error { return a.attachEndpointMode(ctx, n, &e, mode) }
	if idx != 0 {
		attach = func() error { return a.attachEndpointAtMode(ctx, n, &e, idx, mode, false, 0) }
	}
	if err := attach(); err != nil {
		return before, err
	}
	if e.Ifindex == before.Ifindex && e.NetnsCookie == before.NetnsCookie {
		return e, nil
	}
	if err := a.store.UpdateEndpoint(e.api()); err != nil {
		return e, err
	}
	n.mu.Lock()
	n.set(en, e)
	n.mu.Unlock()
	return e, nil
}

// restartMode is the mode an endpoint's programs are attached in again at
// start: the live mode where both hooks are on TCX already in it (a Docker
// endpoint: switching its link that is up back to a clsact qdisc would lose
// frames), or where e is still keyed in the host namespace (a Docker link
// that dockerd brought up, whose index in its sandbox e does not know:
// hostKeyed), else the endpoints' mode.
func (a *Engine) restartMode(e endpoint) loader.Mode {
	if a.modes.Live == a.modes.Endpoint || e.Ifindex == 0 {
		return a.modes.Endpoint
	}
	if a.hostKeyed(e) {
		return a.modes.Live
	}
	if missing, err := a.dp.Missing(e.Netns, e.Ifindex, a.modes.Live); err == nil && len(missing) == 0 {
		return a.modes.Live
	}
	return a.modes.Endpoint
}
