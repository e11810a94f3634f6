package engine

// What front ends that create links for someone else (Docker's remote
// driver) need: addresses reserved ahead of an endpoint, an endpoint whose
// link is created in the host namespace and handed off to be moved into
// its sandbox, finished once it is there, detached and removed in two
// steps, and renamed once its container's name is known.
//
// A handed-off endpoint is stored "creating" with an empty IfName before
// its link exists; FinishHandoff makes it "ready" (datapath attached,
// IfName and namespace inode recorded) once the link is up in the sandbox,
// or the next Start does. Leave marks it "removing" before detaching it. A
// crash at any point leaves what Reconcile already undoes: a "creating" or
// "removing" record, a link with a temporary name in the host namespace,
// or a marked link in a sandbox whose record is removed.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
	"github.com/mvlan/mvlan/netconf"
)

// Handoff is an endpoint whose link the engine creates in the host
// namespace for someone else to move into the namespace at Netns.
type Handoff struct {
	ID, NetworkID string
	Name          string // the endpoint's name until renamed
	Netns         string // where the link will be moved
	MAC           net.HardwareAddr
	// Addrs are reserved (Reserve) under Owner; the endpoint holds them
	// under its name from then on, and on failure they stay Owner's.
	Addrs []netip.Prefix
	Owner string
}

// HandoffLink is what the one who moves the link needs.
type HandoffLink struct {
	Name     string       // the link's name in the host namespace
	Gateways []netip.Addr // the default routes the endpoint gets
}

// CreateHandoff stores h as "creating", then creates its link in the host
// namespace. FinishHandoff makes it ready once it is up in its sandbox.
func (a *Engine) CreateHandoff(ctx context.Context, h Handoff) (HandoffLink, error) {
	n, err := a.networkOrGone(h.NetworkID)
	if err != nil {
		return HandoffLink{}, err
	}
	if !filepath.IsAbs(h.Netns) {
		return HandoffLink{}, invalid(fmt.Errorf("sandbox key %q is not a namespace path", h.Netns))
	}
	if err := checkName(h.Name); err != nil {
		return HandoffLink{}, err
	}
	e := endpoint{ID: h.ID, Name: h.Name, NetworkID: n.ID, Netns: h.Netns,
		MAC: h.MAC, Addrs: h.Addrs, State: Creating, Created: time.Now().UTC()}
	en, err := a.admitHandoff(n, e)
	if err != nil {
		return HandoffLink{}, err
	}
	defer en.busy.Unlock()
	defer a.macs.release(e.MAC, e.ID) // admitHandoff's claim: the row is written (knowHandoff) or given back by then
	giveBack := func() {
		n.mu.Lock()
		n.unindex(en)
		_ = reown(n.space, e.Addrs, h.Owner)
		n.mu.Unlock()
	}
	if err := a.store.CreateEndpoint(e.api()); err != nil {
		giveBack()
		if errors.Is(err, store.ErrExists) {
			return HandoffLink{}, conflict(fmt.Errorf("sandbox %s is on network %s already", h.Netns, n.name()))
		}
		return HandoffLink{}, fmt.Errorf("store endpoint %s: %w", e.Name, err)
	}
	crashpoint.Hit("docker-join:after-state")
	name, err := a.host.CreateHandoff(ctx, link.HandoffSpec{Parent: n.Parent, Mode: n.Mode, MAC: h.MAC, Alias: a.alias("ep", e.ID)})
	if err != nil {
		err = fmt.Errorf("create the link of endpoint %s: %w", shortID(e.ID), err)
		if derr := a.store.DeleteEndpoint(e.ID); derr != nil {
			return HandoffLink{}, errors.Join(err, derr)
		}
		giveBack()
		return HandoffLink{}, err
	}
	crashpoint.Hit("docker-join:after-link")
	a.knowHandoff(n, en, &e, name)
	a.log.Info("Docker endpoint joined", "name", e.Name, "network", n.name(), "sandbox", h.Netns, "addrs", e.Addrs, "mac", e.MAC.String(), "link", name)
	return HandoffLink{Name: name, Gateways: a.endpointSpec(n, e).Gateways}, nil
}

// knowHandoff puts a handed-off endpoint in the datapath's table under its
// link's keys in the host namespace, before the link is moved and brought
// up: receivers check a frame's sender against the table, so an endpoint
// the table does not know yet would have its first frames (its ARP
// request) dropped as unknown_source until FinishHandoff. FinishHandoff
// moves the entry to the keys in the sandbox. A failure only costs that
// first second; a crash in between leaves an entry the next start prunes.
// The link gets its guard first (guardHandoff).
func (a *Engine) knowHandoff(n *network, en *entry, e *endpoint, linkName string) {
	l, err := a.host.Link(linkName)
	if err != nil {
		a.log.Warn("Docker endpoint: its link is not in the datapath's table until it is ready", "name", e.Name, "err", err)
		return
	}
	a.guardHandoff(n, *e, l.Index)
	cookie, err := a.ns.Cookie(a.hostPath())
	if err != nil {
		a.log.Warn("Docker endpoint: its link is not in the datapath's table until it is ready", "name", e.Name, "err", err)
		return
	}
	keyed := *e
	keyed.NetnsCookie, keyed.Ifindex = cookie, l.Index
	if err := a.setTableEntry(n, keyed); err != nil {
		a.log.Warn("Docker endpoint: its link is not in the datapath's table until it is ready", "name", e.Name, "err", err)
		return
	}
	if err := a.store.UpdateEndpoint(keyed.api()); err != nil {
		_ = a.dp.DeleteEndpoint(cookie, l.Index)
		a.log.Warn("Docker endpoint: store its table keys", "name", e.Name, "err", err)
		return
	}
	*e = keyed
	n.mu.Lock()
	n.set(en, keyed)
	n.mu.Unlock()
}

// guardHandoff puts a guard on the ingress of e's link idx in the host
// namespace: dockerd moves the link into its container and brings it up
// there, with the kernel's defaults for IPv6 (accept_ra=1, autoconf=1: a
// link's own settings do not move with it), before FinishHandoff can
// attach its programs; a router advertisement from the wire in between
// would give the container a default route and an address (and fails
// dockerd's own default route). The guard drops what ep_ingress would of
// router messages, and moves with the link; its programs take over
// (attachEndpointAtMode, unguard), or it goes with the link (forgetEntry).
// Only a TCX link moves with its device: with Live in tc mode (a kernel
// without TCX) the link has no guard, and the endpoint takes what comes
// until FinishHandoff.
func (a *Engine) guardHandoff(n *network, e endpoint, idx int) {
	if a.modes.Live != loader.ModeTCX {
		return
	}
	if err := a.dp.GuardHandoff(a.hostPath(), e.ID, idx, n.DatapathID); err != nil {
		a.log.Warn("Docker endpoint: no guard against router advertisements until it is ready", "name", e.Name, "err", err)
	}
}

// setRAConf gives the link of Docker endpoint e, in its container, the
// network's accept_ra (0 but with ipv6_ra=accept) and autoconf (0), as a
// link mvlan makes gets them before it is up: dockerd moved it in with
// the kernel's defaults (accept_ra=1, autoconf=1). The datapath already
// keeps the wire's router messages from it where the network takes none
// (ra_ignore); on an ipv6_ra=accept network the router's would make it an
// address mvlan did not give, whose frames the datapath drops.
func (a *Engine) setRAConf(n *network, e endpoint) {
	if !n.IPv6 {
		return
	}
	if err := a.ns.SetRAConf(e.Netns, e.IfName, netconf.FirstHopOf(n.Options).AcceptRA); err != nil {
		a.log.Warn("Docker endpoint: set accept_ra and autoconf of its link", "name", e.Name, "err", err)
	}
}

// unguard takes endpoint e's guard off (guardHandoff), if it has one.
func (a *Engine) unguard(e endpoint) {
	if err := a.dp.UnguardHandoff(e.ID); err != nil {
		a.log.Warn("Docker endpoint: take its guard off", "name", e.Name, "err", err)
	}
}

// hostPath is the managed namespace's path.
func (a *Engine) hostPath() string {
	if a.cfg.HostNetns != "" {
		return a.cfg.HostNetns
	}
	return "/proc/self/ns/net"
}

// admitHandoff puts a handed-off endpoint in the index, its addresses
// held under its name, with its lock held.
func (a *Engine) admitHandoff(n *network, e endpoint) (*entry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h := n.health(); h.status == StatusRemoving {
		return nil, conflict(fmt.Errorf("network %s cannot take endpoints now: %s", n.name(), h))
	}
	if n.byName[e.Name] != nil {
		return nil, conflict(fmt.Errorf("sandbox %s is on network %s already", e.Netns, n.name()))
	}
	if n.eps[e.ID] != nil {
		return nil, conflict(fmt.Errorf("endpoint %s exists already", shortID(e.ID)))
	}
	if n.shim != nil && bytes.Equal(e.MAC, shimMAC(n)) {
		return nil, conflict(fmt.Errorf("MAC %s is the host shim's (%s) on network %s; choose another --mac-address", e.MAC, shimName(n), n.name()))
	}
	// Docker's EndpointMAC checked it; an mvlan run --mac may have taken
	// it since, and two index entries of one MAC would leave it unguarded.
	if o := n.byMAC[string(e.MAC)]; o != nil {
		return nil, conflict(fmt.Errorf("MAC %s is already used on network %s (endpoint %s); choose another --mac-address", e.MAC, n.name(), o.ep.Name))
	}
	// Or on another network, since (its datapath row), or being attached
	// there now (its claim, until knowHandoff writes this one's row).
	if err := a.claimOnHost(n, e); err != nil {
		return nil, err
	}
	if err := reown(n.space, e.Addrs, e.Name); err != nil {
		a.macs.release(e.MAC, e.ID)
		return nil, err
	}
	return n.add(e), nil
}

// reown makes owner the holder of addrs in space (their holder is shown by
// mvlan doctor). Caller holds the network's mu, so no one takes them in
// between.
func reown(space addrSpace, addrs []netip.Prefix, owner string) error {
	for _, p := range addrs {
		if cur, ok := space.Owner(p.Addr()); ok && cur == owner {
			continue
		}
		space.Release(p.Addr())
		if _, err := space.Request(p.Addr(), owner); err != nil {
			return ipamError(err)
		}
	}
	return nil
}

func ipamError(err error) error {
	var taken *ipam.TakenError
	if errors.As(err, &taken) {
		return conflict(err)
	}
	return invalid(err)
}

func shortID(id string) string { return id[:min(12, len(id))] }

// isHandoff reports whether e is a handed-off endpoint whose link has not
// been seen in its sandbox yet: stored without an interface name.
// (Endpoints of mvlan run and connect always have one.)
func isHandoff(e endpoint) bool {
	return e.State == Creating && !e.OwnsNetns && e.IfName == ""
}

// hostKeyed reports whether e's datapath keys are still its handed-off
// link's in the host namespace (knowHandoff): the link is not attached in
// its sandbox yet, or that attach failed (FinishHandoff makes it ready
// all the same). Its index there is no index of the sandbox's: the move
// kept it only if the sandbox had no link with it.
func (a *Engine) hostKeyed(e endpoint) bool {
	return e.Ifindex != 0 && a.hostCookie != 0 && e.NetnsCookie == a.hostCookie
}

// FinishHandoff makes endpoint id ready if its link is up in its sandbox:
// records the link's name and the namespace, attaches the datapath. It
// reports whether there is nothing left to wait for.
func (a *Engine) FinishHandoff(ctx context.Context, id string) bool {
	n, en := a.endpointByID(id)
	if en == nil {
		return true
	}
	if e, _ := n.current(en); !isHandoff(e) {
		return true
	} else if _, _, ok := a.handoffLink(e); !ok {
		return false
	}
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok || !isHandoff(e) || ctx.Err() != nil {
		return true // Leave or DeleteEndpoint came first
	}
	l, ino, ok := a.handoffLink(e)
	if !ok {
		return false
	}
	e.IfName, e.NetnsInode, e.State = l.Name, ino, Ready
	// At the link just found, by its index in the sandbox: e.Ifindex is
	// the one it had in the host namespace, which the move kept only if
	// no link in the sandbox had it (a macvlan the container made may).
	// dockerd brought the link up: TCX where there is, not a clsact
	// qdisc, whose adding to a link that is up loses frames.
	crashpoint.Hit("docker-finish:before-attach")
	if err := a.attachEndpointAtMode(ctx, n, &e, l.Index, a.modes.Live, false, 0); err != nil {
		a.log.Warn("Docker endpoint ready without its datapath programs; the next agent start attaches them", "name", e.Name, "err", err)
	}
	crashpoint.Hit("docker-finish:after-attach")
	a.setRAConf(n, e)
	a.announceHandoff(n, e, l.Index)
	a.leaseHandoff(ctx, n, &e)
	a.storeReady(n, en, e)
	return true
}

// announceHandoff announces e's static addresses from its link at ifindex
// in its sandbox, up with them (dockerd configured it), as a link mvlan
// brings up is: neighbours may hold an address of it under the MAC of the
// container that had it before (Docker gives each a new MAC).
func (a *Engine) announceHandoff(n *network, e endpoint, ifindex int) {
	if err := a.host.AnnounceEndpoint(a.endpointSpec(n, e), ifindex); err != nil {
		a.log.Warn("Docker endpoint: announce its addresses", "name", e.Name, "err", err)
	}
}

// storeReady stores e, a handed-off endpoint FinishHandoff made ready,
// and indexes it; then its lease is kept (or sought) and its host shim
// gets its route. Caller holds e's busy lock.
func (a *Engine) storeReady(n *network, en *entry, e endpoint) {
	if err := a.store.UpdateEndpoint(e.api()); err != nil {
		a.log.Warn("Docker endpoint: store it ready", "name", e.Name, "err", err)
		return
	}
	n.mu.Lock()
	n.set(en, e)
	n.mu.Unlock()
	if e.Lease != nil {
		a.keep(n, en)
	} else if n.DHCP {
		a.seekLease(n, en, retryExpired)
	}
	a.shimRoutesAdded(n, en)
	a.log.Info("Docker endpoint ready", "name", e.Name, "network", n.name(), "ifname", e.IfName, "netns", e.Netns)
}

// StallHandoff takes the moving mark off endpoint id's row when the
// runtime has not moved its link in time (dockerd died half way through a
// start, say): until the next start finishes it, no container may send as
// it.
func (a *Engine) StallHandoff(id string) {
	n, en := a.endpointByID(id)
	if en == nil {
		return
	}
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok || !isHandoff(e) || e.Ifindex == 0 {
		return
	}
	row := a.row(n, e)
	row.Moving = false
	if err := a.dp.SetEndpoint(row); err != nil {
		a.log.Warn("Docker endpoint: take its moving mark off", "name", e.Name, "err", err)
	}
}

// handoffLink finds e's link in its sandbox, once it has been named and
// brought up there (the last step of the move), and the sandbox's inode.
func (a *Engine) handoffLink(e endpoint) (link.Info, uint64, bool) {
	ino, err := a.ns.Check(e.Netns)
	if err != nil || ino == a.hostIno {
		return link.Info{}, 0, false // not bound to the container's namespace yet
	}
	links, err := a.ns.Links(e.Netns)
	if err != nil {
		return link.Info{}, 0, false
	}
	alias := a.alias("ep", e.ID)
	tmp := link.TempPrefixFor(a.store.AgentID())
	for _, l := range links {
		if l.Alias == alias && l.Up && !strings.HasPrefix(l.Name, tmp) {
			return l, ino, true
		}
	}
	return link.Info{}, 0, false
}

// finishHandoffs, on start before the endpoints are reconciled (which
// undoes "creating" ones), marks ready the handed-off endpoints whose link
// was moved into the sandbox while no one watched; reconcileEndpoints then
// attaches them. Caller holds netOps, before any front end is served.
func (a *Engine) finishHandoffs() {
	for _, n := range a.networkList() {
		n.mu.Lock()
		var todo []*entry
		for _, en := range n.eps {
			if isHandoff(en.ep) {
				todo = append(todo, en)
			}
		}
		n.mu.Unlock()
		for _, en := range todo {
			a.finishOnStart(n, en)
		}
	}
}

func (a *Engine) finishOnStart(n *network, en *entry) {
	e, _ := n.current(en)
	l, ino, ok := a.handoffLink(e)
	if !ok {
		return
	}
	e.IfName, e.NetnsInode, e.State = l.Name, ino, Ready
	a.setRAConf(n, e)
	if err := a.store.UpdateEndpoint(e.api()); err != nil {
		a.log.Warn("Docker endpoint: store it ready", "name", e.Name, "err", err)
		return
	}
	n.mu.Lock()
	n.set(en, e)
	n.mu.Unlock()
	a.log.Info("Docker endpoint finished on start", "name", e.Name, "ifname", e.IfName, "netns", e.Netns)
}

// RenameEndpoint renames endpoint id from from to to, unless it was
// renamed or started removing meanwhile; it reports whether it did.
// Conflict when to is taken on the endpoint's network.
func (a *Engine) RenameEndpoint(id, from, to string) (bool, error) {
	n, en := a.endpointByID(id)
	if en == nil {
		return false, nil
	}
	if err := checkName(to); err != nil {
		return false, err
	}
	en.busy.Lock()
	defer en.busy.Unlock()
	e, ok := n.current(en)
	if !ok || e.Name != from || e.State == Removing {
		return false, nil
	}
	renamed, err := a.store.RenameEndpoint(id, to)
	if errors.Is(err, store.ErrExists) {
		return false, conflict(fmt.Errorf("name %s is taken on network %s", to, n.name()))
	}
	if err != nil {
		return false, err
	}
	e.Name = renamed.Name
	n.mu.Lock()
	n.set(en, e)
	// The addresses' holder, as mvlan doctor shows it, is the name.
	err = reown(n.space, e.Addrs, e.Name)
	n.mu.Unlock()
	if err != nil {
		a.log.Warn("endpoint renamed: hold its addresses under its new name", "name", e.Name, "err", err)
	}
	// Without a lease its DHCP client asks under an identity made of the
	// name (clientIDOf), which its row holds the datapath to.
	if n.DHCP && e.Ifindex != 0 && (e.Lease == nil || n.dhcp6() && e.Lease6 == nil) {
		if err := a.setTableEntry(n, e); err != nil {
			a.log.Warn("endpoint renamed: its row keeps the DHCP identity of its old name", "name", e.Name, "err", err)
		}
	}
	return true, nil
}
