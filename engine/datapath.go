package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
	"github.com/mvlan/mvlan/netconf"
)

// maxDatapathID bounds network numbers in the BPF maps.
const maxDatapathID = loader.MaxNetworkID

// allocDatapathID returns the lowest network number no network uses.
// Caller holds netOps.
func (a *Engine) allocDatapathID() (uint32, error) {
	used := map[uint32]bool{}
	maps.Copy(used, a.keptIDs)
	for _, n := range a.networkList() {
		used[n.DatapathID] = true
	}
	for id := uint32(1); id <= maxDatapathID; id++ {
		if !used[id] {
			return id, nil
		}
	}
	return 0, conflict(fmt.Errorf("this agent already has %d networks, the most the datapath can number", maxDatapathID))
}

// parentLinks returns the links a network's parent programs go on: the
// link its containers' frames cross (the parent; for a macvlan or macvtap
// parent, its lower link: the kernel puts the containers' macvlans on
// that link's port, so their frames never cross the parent itself), and
// the trunk below it when that link is a VLAN sub-interface; self is the
// parent's own index.
func (a *Engine) parentLinks(n *network) (parent link.Info, trunk *link.Info, self int, err error) {
	parent, err = a.host.Link(n.Parent)
	if err != nil {
		return parent, nil, 0, err
	}
	self = parent.Index
	lowered := parent.IsMacvlan() && !parent.LowerElsewhere && parent.ParentIndex > 0
	if !lowered && (parent.Kind != "vlan" || parent.ParentIndex == 0) {
		return parent, nil, self, nil
	}
	links, err := a.host.Links()
	if err != nil {
		return parent, nil, self, err
	}
	byIndex := make(map[int]link.Info, len(links))
	for _, l := range links {
		byIndex[l.Index] = l
	}
	if lowered {
		lower, ok := byIndex[parent.ParentIndex]
		if !ok {
			return parent, nil, self, fmt.Errorf("lower link %d of %s %s not found", parent.ParentIndex, parent.Kind, parent.Name)
		}
		parent = lower
	}
	if t, ok := byIndex[parent.ParentIndex]; ok && parent.Kind == "vlan" && parent.ParentIndex != 0 {
		return parent, &t, self, nil
	}
	return parent, nil, self, nil
}

// attachNetwork tells the datapath about a network's parent and attaches
// the parent programs to it and to its trunk; hl lists the host's links
// (nil: listed if needed). Idempotent. Caller holds netOps.
func (a *Engine) attachNetwork(ctx context.Context, n *network, hl *hostListing) error {
	parent, trunk, self, err := a.parentLinks(n)
	if err != nil {
		return fmt.Errorf("attach datapath to %s: %w", n.Parent, err)
	}
	trunkIndex := 0
	if trunk != nil {
		trunkIndex = trunk.Index
	}
	a.forgetRemade(ctx, n, parent.Index, trunkIndex)
	// Recorded first, both, so that the undo of a failure half way
	// (detachNetwork) finds what was put on the links, and a failed
	// refresh forgets neither.
	n.setParent(parent, trunk, self)
	if err := a.dp.SetParent(parent.Index, n.DatapathID, uint16(parent.VID)); err != nil {
		return fmt.Errorf("attach datapath to %s: %w", n.Parent, err)
	}
	if err := a.dp.SetRASource(n.DatapathID, raSourceOf(netconf.FirstHopOf(n.Options))); err != nil {
		return fmt.Errorf("attach datapath to %s: %w", n.Parent, err)
	}
	if err := a.pinGateways(n, parent, hl); err != nil {
		return fmt.Errorf("attach datapath to %s: %w", n.Parent, err)
	}
	if err := a.dp.AttachParent(ctx, a.cfg.HostNetns, parent.Index, a.modes.Parent); err != nil {
		return fmt.Errorf("attach datapath to %s: %w", n.Parent, err)
	}
	if trunk == nil {
		return nil
	}
	if err := a.dp.AttachParent(ctx, a.cfg.HostNetns, trunk.Index, a.modes.Parent); err != nil {
		return fmt.Errorf("attach datapath to trunk %s: %w", trunk.Name, err)
	}
	return nil
}

// forgetRemade forgets what the datapath keeps of n's parent and trunk
// at their old indexes when they were made again or are other links now
// (now at parent and trunk): the parent's row, both links' programs (a
// macvlan parent made again on another link leaves its old lower link
// alive) and per-VLAN counters, which would otherwise stay in the maps
// and in the metrics (as ifindex:N) for good. Caller holds netOps.
func (a *Engine) forgetRemade(ctx context.Context, n *network, parent, trunk int) {
	oldParent, oldTrunk := n.indexes()
	for _, l := range []struct {
		old, now int
		row      bool
	}{{oldParent, parent, true}, {oldTrunk, trunk, false}} {
		if l.old == 0 || l.old == l.now {
			continue
		}
		var errs []error
		// The row, unless another network has the link as its parent (as
		// a trunk only, it has none: detachNetwork); the counters, unless
		// another network uses the link at all.
		if l.row && !a.isParent(l.old, n) {
			errs = append(errs, a.dp.DeleteParent(l.old))
		}
		if !a.parentInUse(l.old, n) {
			errs = append(errs, a.dp.DetachParent(ctx, a.cfg.HostNetns, l.old), // a gone link is no error
				a.dp.ForgetLinks(func(idx int) bool { return idx == l.old }))
		}
		if err := errors.Join(errs...); err != nil {
			a.log.Warn("datapath state of a link made again not deleted", "network", n.name(), "ifindex", l.old, "err", err)
		}
	}
}

// isParent reports whether a network other than n has its parent at
// ifindex idx. Caller holds netOps.
func (a *Engine) isParent(idx int, n *network) bool {
	for _, o := range a.networkList() {
		if p, _ := o.indexes(); o != n && p == idx {
			return true
		}
	}
	return false
}

// parentInUse reports whether a network other than n has its parent or
// trunk at ifindex idx. Caller holds netOps.
func (a *Engine) parentInUse(idx int, n *network) bool {
	for _, o := range a.networkList() {
		if p, t := o.indexes(); o != n && (p == idx || t == idx) {
			return true
		}
	}
	return false
}

func (n *network) setParent(parent link.Info, trunk *link.Info, self int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.parentIndex, n.parentMAC, n.parentAltNames = parent.Index, parent.MAC, parent.AltNames
	n.parentName, n.selfIndex = parent.Name, self
	n.trunkIndex, n.trunkName = 0, ""
	if trunk != nil {
		n.trunkIndex, n.trunkName = trunk.Index, trunk.Name
	}
}

// indexes returns where the network's parent programs are attached.
func (n *network) indexes() (parent, trunk int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.parentIndex, n.trunkIndex
}

// detachNetwork removes a network's parent programs, except from links
// another network still uses, and forgets its counters. n is no longer in
// the index. Caller holds netOps.
func (a *Engine) detachNetwork(ctx context.Context, n *network) error {
	parents, inUse := map[int]bool{}, map[int]bool{}
	for _, o := range a.networkList() {
		p, t := o.indexes()
		parents[p], inUse[p], inUse[t] = true, true, true
	}
	parentIndex, trunkIndex := n.indexes()
	var errs []error
	// The row goes unless the link is another network's parent: as the
	// trunk below another network's parent only, it has no row, and one
	// left would take its untagged frames for this network's (and for the
	// next network's given the same number). As such a trunk, it keeps
	// counting per VLAN, this network's untagged frames included.
	switch {
	case parentIndex == 0 || parents[parentIndex]:
	case inUse[parentIndex]:
		errs = append(errs, a.dp.RetireParent(parentIndex))
	default:
		errs = append(errs, a.dp.DeleteParent(parentIndex))
	}
	for _, idx := range []int{parentIndex, trunkIndex} {
		if idx != 0 && !inUse[idx] {
			errs = append(errs, a.dp.DetachParent(ctx, a.cfg.HostNetns, idx),
				a.dp.ForgetLinks(func(i int) bool { return i == idx }))
		}
	}
	n.mu.Lock()
	n.gwPin = gatewayPin{} // a late link event must not write its entry again
	n.mu.Unlock()
	errs = append(errs, a.dp.ForgetNetwork(n.DatapathID))
	return errors.Join(errs...)
}

// attachEndpoint puts e in the endpoint table, then attaches the endpoint
// programs to its slave (the programs drop every frame of a link whose
// endpoint is not in the table, so the table goes first). It records the
// keys in e.
func (a *Engine) attachEndpoint(ctx context.Context, n *network, e *endpoint) error {
	return a.attachEndpointMode(ctx, n, e, a.modes.Endpoint)
}

// attachEndpointMode is attachEndpoint in mode: a.modes.Live for a link
// that already carries traffic (FinishHandoff).
func (a *Engine) attachEndpointMode(ctx context.Context, n *network, e *endpoint, mode loader.Mode) error {
	idx, err := a.slaveIndex(*e)
	if err != nil {
		return err
	}
	return a.attachEndpointAtMode(ctx, n, e, idx, mode, false, 0)
}

// attachEndpointAt is attachEndpoint for e's link at ifindex idx, which the
// caller has just made (BeforeUp): nothing is looked for on its hooks
// before the attach (AttachNewEndpoint). An entry under other keys recorded
// in e (a link made again) is moved (MoveEndpoint): its MAC and addresses
// stay known throughout, since the link may already send. cookie is the
// namespace's when the caller knows it (a namespace the pool made ahead),
// else 0 and it is looked up.
func (a *Engine) attachEndpointAt(ctx context.Context, n *network, e *endpoint, idx int, cookie uint64) error {
	return a.attachEndpointAtMode(ctx, n, e, idx, a.modes.Endpoint, true, cookie)
}

// attachEndpointAtMode is attachEndpointAt in mode, for a link just made
// (fresh) or one that may have anything on its hooks.
func (a *Engine) attachEndpointAtMode(ctx context.Context, n *network, e *endpoint, idx int, mode loader.Mode, fresh bool, cookie uint64) (err error) {
	if cookie == 0 {
		if cookie, err = a.ns.Cookie(e.Netns); err != nil {
			return fmt.Errorf("attach datapath to %s: %w", e.Name, err)
		}
	}
	to := *e
	to.NetnsCookie, to.Ifindex = cookie, idx
	if e.Ifindex != 0 {
		err = a.dp.MoveEndpoint(e.NetnsCookie, e.Ifindex, a.row(n, to))
	} else {
		err = a.dp.SetEndpoint(a.row(n, to))
	}
	if err != nil { // e keeps the keys its row still has
		return fmt.Errorf("attach datapath to %s: %w", e.Name, err)
	}
	e.NetnsCookie, e.Ifindex = cookie, idx
	attach := a.dp.AttachEndpointIn
	if fresh {
		attach = a.dp.AttachNewEndpoint
	}
	if err := attach(ctx, e.Netns, e.NetnsCookie, e.Ifindex, mode); err != nil {
		return fmt.Errorf("attach datapath to %s: %w", e.Name, err)
	}
	if !fresh {
		a.unguard(*e) // a Docker endpoint's, its programs now there
	}
	return nil
}

// setTableEntry puts e in the datapath's endpoint table under its keys.
func (a *Engine) setTableEntry(n *network, e endpoint) error {
	if err := a.dp.SetEndpoint(a.row(n, e)); err != nil {
		return fmt.Errorf("attach datapath to %s: %w", e.Name, err)
	}
	return nil
}

// tableEntry is e's row of the datapath's endpoint table: the addresses
// it may use (usableAddrs).
func tableEntry(n *network, e endpoint) loader.Endpoint {
	addrs := usableAddrs(e)
	ips := make([]netip.Addr, 0, len(addrs))
	for _, p := range addrs {
		ips = append(ips, p.Addr())
	}
	_, probing := n.probing.Load(e.ID)
	return loader.Endpoint{NetnsCookie: e.NetnsCookie, Ifindex: e.Ifindex, MAC: e.MAC, IPs: ips, NetworkID: n.DatapathID,
		Allow: allowOf(netconf.FirstHopOf(n.Options)), Moving: isHandoff(e), Probing: probing}
}

// raSourceOf is where a network's endpoints take router advertisements
// from (-o ipv6_ra_source); zero without the option (ipv6_ra=ignore): the
// datapath then lets none from the wire reach them (ra_ignore), whatever
// their link's accept_ra says.
func raSourceOf(f netconf.FirstHop) loader.RASource {
	src := loader.RASource{LL: f.RASource}
	if mac, err := net.ParseMAC(f.RASourceMAC); err == nil {
		src.MAC = mac
	}
	return src
}

// allowOf is what a network's first-hop options lift of its endpoints'
// guards.
func allowOf(f netconf.FirstHop) loader.Allow {
	var a loader.Allow
	if f.AllowRouter {
		a |= loader.AllowRouter
	}
	if f.AllowDHCPServer {
		a |= loader.AllowDHCPServer
	}
	return a
}

// slaveIndex finds the ifindex of e's link in its namespace (ownLink).
func (a *Engine) slaveIndex(e endpoint) (int, error) {
	idx, err := a.findSlave(e)
	if err == nil && idx == 0 {
		err = fmt.Errorf("endpoint %s: no link in %s", e.Name, e.Netns)
	}
	return idx, err
}

// findSlave is the ifindex of e's link in its namespace (ownLink); 0 when
// the namespace has no such link.
func (a *Engine) findSlave(e endpoint) (int, error) {
	l, ok, err := a.ownLink(e)
	if err != nil || !ok {
		return 0, err
	}
	return l.Index, nil
}

// ownLink finds e's link in its namespace: by the ifindex stored with e
// (its datapath key) when e's namespace is still the one that index is
// in, else by our alias (a link not keyed yet: being made, handed off to
// Docker, or made again after a crash). A container with CAP_NET_ADMIN
// can change its link's alias (ip link set eth0 alias x), not its
// ifindex; only a macvlan counts, so a link it made under that index
// after deleting ours is not taken for ours.
func (a *Engine) ownLink(e endpoint) (link.Info, bool, error) {
	links, err := a.ns.Links(e.Netns)
	if err != nil {
		return link.Info{}, false, err
	}
	if a.keyedIn(e) {
		for _, l := range links {
			if l.Index == e.Ifindex && l.Kind == "macvlan" {
				return l, true, nil
			}
		}
	}
	alias := a.alias("ep", e.ID)
	for _, l := range links {
		if l.Alias == alias {
			return l, true, nil
		}
	}
	return link.Info{}, false, nil
}

// keyedIn reports whether e.Ifindex is an ifindex in e's namespace: e has
// one, it is not a handed-off link's in the host namespace (whether or
// not e is ready: hostKeyed), and the namespace at e.Netns is still e's.
func (a *Engine) keyedIn(e endpoint) bool {
	if e.Ifindex == 0 || isHandoff(e) || a.hostKeyed(e) || e.NetnsInode == 0 {
		return false
	}
	ino, err := a.ns.Check(e.Netns)
	return err == nil && ino == e.NetnsInode
}

// detachPrograms removes e's programs if its namespace is still e's. One
// keyed in the host namespace has none there, and whatever link has that
// index in its namespace is not its.
func (a *Engine) detachPrograms(ctx context.Context, e endpoint) error {
	if e.Ifindex == 0 || a.hostKeyed(e) || !a.netnsAlive(e) {
		return nil
	}
	return a.dp.DetachEndpoint(ctx, e.Netns, e.Ifindex)
}

// forgetPrograms drops the datapath's records of e's programs once
// teardown has deleted e's link: the kernel took its hooks with it, so
// nothing is detached (no namespace entered, no qdisc deleted). A record
// without a cookie (adopted from an older agent) is detached the long
// way, which finds the link gone.
func (a *Engine) forgetPrograms(ctx context.Context, e endpoint) error {
	switch {
	case e.Ifindex == 0:
		return nil
	case e.NetnsCookie == 0:
		return a.detachPrograms(ctx, e)
	}
	return a.dp.ForgetEndpoint(e.NetnsCookie, e.Ifindex)
}

// forgetEntry deletes e's row of the endpoint table. Only once e's link
// is gone: the endpoint programs drop every frame of a link whose row is
// missing, and receivers a frame from a MAC no row has, so the link is
// never live without its row.
func (a *Engine) forgetEntry(e endpoint) error {
	a.unguard(e) // a Docker endpoint's that never got its programs
	if e.Ifindex == 0 {
		return nil
	}
	return a.dp.DeleteEndpoint(e.NetnsCookie, e.Ifindex)
}

// pruneEndpointTable drops table entries of endpoints not in state (a
// crash between the table write and the state write), unless the state
// may have lost some (this start replaced a corrupt state, or records are
// quarantined): their links are left alone, and a link without its row
// has every frame dropped. Caller holds netOps.
func (a *Engine) pruneEndpointTable(eps []endpoint) error {
	if q := a.quarantinedIDs(); a.stateReplaced || q.any() {
		a.log.Warn("endpoint table not pruned: the state may not know every endpoint", "state_replaced", a.stateReplaced, "quarantined", len(q.ids), "quarantine_unlisted", q.unknown)
		return nil
	}
	type key struct {
		cookie uint64
		idx    int
	}
	want := map[key]bool{}
	for _, e := range eps {
		want[key{e.NetnsCookie, e.Ifindex}] = true
	}
	for _, n := range a.networkList() { // the host shims are endpoints too
		n.mu.Lock()
		if n.shim != nil {
			want[key{n.shim.cookie, n.shim.ifindex}] = true
		}
		n.mu.Unlock()
	}
	have, err := a.dp.Endpoints()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range have {
		if !want[key{h.NetnsCookie, h.Ifindex}] {
			errs = append(errs, a.dp.DeleteEndpoint(h.NetnsCookie, h.Ifindex))
		}
	}
	return errors.Join(append(errs, a.dp.PruneOrphans())...)
}

// pruneDatapath forgets parents no network has (their rows, programs and
// counters) and unpins TCX links of devices that are gone. While the
// state may have lost networks (this start replaced it, or records are
// quarantined), it forgets none: their containers may run, and their
// numbers stay taken (keepLost). Caller holds netOps.
func (a *Engine) pruneDatapath(ctx context.Context) error {
	want, links, ids := map[int]bool{}, map[int]bool{}, map[uint32]bool{}
	for _, n := range a.networkList() {
		p, t := n.indexes()
		want[p], links[p], links[t], ids[n.DatapathID] = true, true, true, true
	}
	parents, err := a.dp.Parents()
	if err != nil {
		return err
	}
	if q := a.quarantinedIDs(); a.stateReplaced || q.any() {
		_, err := a.dp.PruneLinks()
		return errors.Join(a.keepLost(parents, ids), err)
	}
	var errs []error
	for _, p := range parents {
		if want[p.Ifindex] {
			continue
		}
		// A network removed while the agent was down, or whose rm was
		// cut short after its record went: its row, the programs on its
		// parent (a gone link is no error) and its counters, which the
		// next network given its number would take over. On a link that
		// stays another's trunk, its untagged frames stay counted there.
		if !ids[p.NetworkID] && links[p.Ifindex] {
			errs = append(errs, a.dp.RetireParent(p.Ifindex))
		} else {
			errs = append(errs, a.dp.DeleteParent(p.Ifindex))
		}
		if !links[p.Ifindex] {
			errs = append(errs, a.dp.DetachParent(ctx, a.cfg.HostNetns, p.Ifindex))
		}
		if !ids[p.NetworkID] {
			errs = append(errs, a.dp.ForgetNetwork(p.NetworkID))
		}
	}
	// Per-VLAN counters of links no network uses (made again, or their
	// network removed, while the agent was down).
	errs = append(errs, a.dp.ForgetLinks(func(idx int) bool { return !links[idx] }))
	_, err = a.dp.PruneLinks()
	return errors.Join(append(errs, err)...)
}

// keepLost keeps the datapath numbers of networks not in the state (not
// in ids) that parent or endpoint rows carry: a network the state lost,
// whose containers run on. A new network given one would share their
// isolation, counters and gateway pins.
func (a *Engine) keepLost(parents []loader.Parent, ids map[uint32]bool) error {
	eps, err := a.dp.Endpoints()
	if err != nil {
		return err
	}
	kept := map[uint32]bool{}
	keep := func(id uint32) {
		if id != 0 && !ids[id] {
			kept[id] = true
		}
	}
	for _, p := range parents {
		keep(p.NetworkID)
	}
	for _, e := range eps {
		keep(e.NetworkID)
	}
	a.keptIDs = kept
	if len(kept) > 0 {
		a.log.Warn("datapath rows of networks the state does not have are kept, and their numbers: the state may not know every network",
			"numbers", slices.Sorted(maps.Keys(kept)), "state_replaced", a.stateReplaced)
	}
	return nil
}
