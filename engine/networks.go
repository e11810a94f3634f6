package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/netconf"
)

// hostOnlyPrefix names the links of networks without a parent.
const hostOnlyPrefix = "mvl-"

// alias marks a kernel link as this agent's: "mvlan/AGENT/KIND/ID".
func (a *Engine) alias(kind, id string) string { return a.aliasPrefix() + kind + "/" + id }

// aliasPrefix starts every mark of this agent: "mvlan/AGENT/".
func (a *Engine) aliasPrefix() string { return "mvlan/" + a.store.AgentID() + "/" }

// CreateNetwork validates req, creates the parent link if mvlan owns it and
// stores the network. Order for crash safety: link (marked with our alias)
// first, state second; a crash between them leaves a marked link that no
// network needs, which Reconcile removes.
func (a *Engine) CreateNetwork(ctx context.Context, req api.NetworkCreate) (api.Network, error) {
	return a.CreateNetworkWithID(ctx, req, store.NewID())
}

// CreateNetworkWithID is CreateNetwork with the network's ID given (e.g.
// Docker's, for networks made through its plugin).
func (a *Engine) CreateNetworkWithID(ctx context.Context, req api.NetworkCreate, id string) (_ api.Network, err error) {
	// Held from the cluster join on, so that a failed create's leave runs
	// before another create or rm of the name, or a rejoin, can start.
	a.netOps.Lock()
	defer a.netOps.Unlock()
	switch req.Scope {
	case "", api.ScopeLocal:
	case api.ScopeCluster:
		if err := a.joinCluster(ctx, &req, &id); err != nil {
			return api.Network{}, err
		}
		defer func() {
			if err != nil && a.leaveCluster(context.WithoutCancel(ctx), req.Name, id) {
				a.forgetClusterFiles(req.Name, id)
			}
		}()
	default:
		return api.Network{}, invalid(fmt.Errorf("--scope %q: use local (the default) or cluster", req.Scope))
	}
	cfg, err := netconf.Parse(req)
	if err != nil {
		return api.Network{}, invalid(err)
	}
	if req.Scope == api.ScopeCluster {
		if err := checkClusterConfig(cfg.Serial, cfg.HostShim != nil); err != nil {
			return api.Network{}, err
		}
		cfg.Options[scopeOption] = api.ScopeCluster
	}
	if req.DockerIPAM {
		cfg.Options[dockerIPAMOption] = "true"
	}
	if cfg.HostShim != nil {
		if err := checkShimFor(cfg.Name, cfg.DHCP, req.DockerIPAM, *cfg.HostShim); err != nil {
			return api.Network{}, err
		}
	}
	if err := a.checkUnique(cfg); err != nil {
		return api.Network{}, err
	}
	space, err := a.newSpace(cluster.Network{ID: id, Name: cfg.Name}, cfg.Pools, cfg.Options, cfg.Serial)
	if err != nil {
		return api.Network{}, invalid(err)
	}
	if cs, ok := space.(*cluster.Space); ok {
		defer func() {
			if err != nil {
				cs.Close()
			}
		}()
		if err := cs.Verify(ctx); err != nil { // a file of an earlier membership
			return api.Network{}, err
		}
	}
	n, err := a.buildNetwork(id, cfg, space)
	if err != nil {
		return api.Network{}, err
	}
	if err := a.createLinks(ctx, n); err != nil {
		return api.Network{}, err
	}
	crashpoint.Hit("network-create:after-link")
	n.mu.Lock()
	stored := n.stored()
	n.mu.Unlock()
	if err := a.store.CreateNetwork(stored); err != nil {
		err = fmt.Errorf("store network %s: %w", n.name(), err)
		return api.Network{}, errors.Join(err, a.deleteShim(n), a.deleteOwnedLink(n))
	}
	crashpoint.Hit("network-create:after-state")
	seq := a.tombs.now()
	if err := errors.Join(a.attachNetwork(ctx, n, nil), a.attachShim(ctx, n)); err != nil {
		return api.Network{}, errors.Join(err, a.store.DeleteNetwork(n.ID), a.dropNetwork(context.WithoutCancel(ctx), n))
	}
	n.linked() // no endpoints yet
	a.mu.Lock()
	a.nets[n.ID] = n
	a.mu.Unlock()
	if err := a.repinIfMoved(n, seq); err != nil {
		a.log.Warn("gateways of a new network not pinned again after a link event", "network", n.name(), "err", err)
	}
	a.log.Info("network created", "name", n.name(), "id", n.ID[:12], "parent", n.Parent, "parent_kind", n.ParentKind)
	return a.view(n, false), nil
}

// buildNetwork makes network id of cfg over space, not shared yet: its
// index, datapath number, parent and host shim addresses. Caller holds
// netOps.
func (a *Engine) buildNetwork(id string, cfg netconf.Config, space addrSpace) (*network, error) {
	n := &network{ID: id, Driver: api.Driver, Created: time.Now().UTC(),
		Mode: cfg.Mode, IPv6: cfg.IPv6, Internal: cfg.Internal, Serial: cfg.Serial,
		Labels: cfg.Labels, Options: withShim(cfg.Options, nil), Pools: toAPIPools(space.Pools()), DHCP: cfg.DHCP,
		space: space, status: healthy()}
	n.setName(cfg.Name, nameFrom(id, cfg.Name))
	n.initIndex()
	var err error
	if n.DatapathID, err = a.allocDatapathID(); err != nil {
		return nil, err
	}
	if err := a.resolveParent(n, cfg.Parent); err != nil {
		return nil, err
	}
	if cfg.HostShim != nil {
		addrs, err := n.reserveShim(*cfg.HostShim)
		if err != nil {
			return nil, err
		}
		n.shim = &shimState{addrs: addrs}
	}
	return n, nil
}

// checkUnique refuses a name, subnet or parent another network has.
// Caller holds netOps.
func (a *Engine) checkUnique(cfg netconf.Config) error {
	for _, o := range a.networkList() {
		if o.name() == cfg.Name {
			return conflict(fmt.Errorf("network with name %s already exists; choose another name or remove it first", cfg.Name))
		}
		if cfg.Parent != "" && o.Parent == cfg.Parent {
			return conflict(fmt.Errorf("parent %s is already used by network %s; a parent link carries one network (use a sub-interface such as %s.VID for another)", cfg.Parent, o.name(), cfg.Parent))
		}
		for _, p := range cfg.Pools {
			for _, q := range o.Pools {
				if p.Subnet.Overlaps(q.Subnet) {
					return conflict(fmt.Errorf("subnet %s overlaps subnet %s of network %s; pick a subnet that does not overlap", p.Subnet, q.Subnet, o.name()))
				}
			}
		}
	}
	return a.checkStrays(cfg.Pools)
}

// resolveParent decides what the network's parent link is and who owns it.
func (a *Engine) resolveParent(n *network, parent string) error {
	if parent == "" {
		n.Parent, n.ParentKind = hostOnlyPrefix+n.ID[:link.MaxNameLen-len(hostOnlyPrefix)], ParentHostOnly
		return nil
	}
	if err := link.CheckParentName(parent); err != nil {
		return invalid(err)
	}
	n.Parent = parent
	info, err := a.host.Link(parent)
	switch {
	case err == nil:
		if info.Kind == "loopback" || info.Name == "lo" {
			return invalid(fmt.Errorf("parent %q is a loopback device; use an Ethernet link such as eth0", parent))
		}
		if info.Encap != "" && info.Encap != "ether" {
			return invalid(fmt.Errorf("parent %q is a %s link of type %s, not Ethernet: a macvlan needs an Ethernet parent (a NIC, bond, bridge, VLAN sub-interface, veth or dummy)", parent, info.Kind, info.Encap))
		}
		// An altname is the link's: kept by its name, which the
		// agent's parent look-ups and link events use.
		n.Parent, n.ParentKind, n.LinkKind = info.Name, ParentExisting, info.Kind
		links, err := a.host.Links()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		if err := notAPort(parent, info, links); err != nil {
			return err
		}
		if err := lowerHere(parent, info); err != nil {
			return err
		}
		return a.parentFree(parent, info, links)
	case !errors.Is(err, link.ErrNotFound):
		return fmt.Errorf("look up parent %s: %w", parent, err)
	}
	p, err := link.ParseParent(parent)
	switch {
	case err != nil && vidLike(parent):
		return invalid(err)
	case err != nil || !p.IsVLAN():
		return invalid(fmt.Errorf("parent link %q not found; create it first, or name it NAME.VID (e.g. eth0.50) to have mvlan create an 802.1q sub-interface", parent))
	}
	lower, err := a.host.Link(p.Lower)
	if err != nil {
		return invalid(fmt.Errorf("parent %s: link %q to put VLAN %d on not found: %w", p.Name, p.Lower, p.VID, err))
	}
	if err := a.vlanFree(p, lower); err != nil {
		return err
	}
	n.ParentKind = ParentVLAN
	return nil
}

// parentFree refuses an existing parent link that is another network's
// under another name (an altname), or that sends through the same device
// as another network's parent: a macvlan's or macvtap's containers send
// through its lower link, so a macvlan of another network's parent, the
// lower link of another network's macvlan parent, or two macvlans of one
// link would carry two networks' frames. A network whose parent is
// missing now is not compared. links are the host's. Caller holds netOps.
func (a *Engine) parentFree(given string, info link.Info, links []link.Info) error {
	byName := make(map[string]link.Info, len(links))
	for _, l := range links {
		byName[l.Name] = l
	}
	for _, o := range a.networkList() {
		ol, ok := byName[o.Parent]
		if !ok || o.ParentKind == ParentHostOnly {
			continue
		}
		switch {
		case ol.Index == info.Index:
			return conflict(fmt.Errorf("parent %s is link %s, already the parent of network %s; a parent link carries one network (use a sub-interface such as %s.VID for another)", given, ol.Name, o.name(), ol.Name))
		case sendsThrough(info) == ol.Index:
			return conflict(fmt.Errorf("parent %s is a %s of %s, the parent of network %s: its containers would send through %s; use a sub-interface such as %s.VID, or a link of its own", given, info.Kind, ol.Name, o.name(), ol.Name, ol.Name))
		case sendsThrough(info) == sendsThrough(ol):
			return conflict(fmt.Errorf("parent %s sends through the same link as %s, the parent of network %s (a %s sends through its lower link); use a sub-interface such as NAME.VID of that link, or a link of its own", given, ol.Name, o.name(), ol.Kind))
		}
	}
	return nil
}

// sendsThrough is the index of the link l's macvlans send through: its
// lower link for a macvlan or macvtap (of this namespace), else l.
func sendsThrough(l link.Info) int {
	if l.IsMacvlan() && !l.LowerElsewhere && l.ParentIndex > 0 {
		return l.ParentIndex
	}
	return l.Index
}

// createLinks creates the parent link when mvlan owns it, then the host
// shim if the network has one; on failure neither is left.
func (a *Engine) createLinks(ctx context.Context, n *network) error {
	if err := a.createOwned(ctx, n); err != nil {
		return err
	}
	if n.shim == nil {
		return nil
	}
	if err := a.createShim(ctx, n, n.shim.addrs); err != nil {
		return errors.Join(err, a.deleteOwnedLink(n))
	}
	return nil
}

// createOwned creates the parent link when mvlan owns it.
func (a *Engine) createOwned(ctx context.Context, n *network) error {
	alias := a.alias("net", n.ID)
	switch n.ParentKind {
	case ParentVLAN:
		p, err := link.ParseParent(n.Parent)
		if err != nil {
			return invalid(err)
		}
		if err := a.host.CreateVLAN(ctx, p, alias); err != nil {
			if errors.Is(err, link.ErrNotSupported) {
				return invalid(err)
			}
			return fmt.Errorf("create parent %s: %w", n.Parent, err)
		}
		n.setLinkKind("vlan")
	case ParentHostOnly:
		kind, err := a.host.CreateHostOnly(ctx, n.Parent, alias)
		if err != nil {
			return fmt.Errorf("create host-only link %s: %w", n.Parent, err)
		}
		n.setLinkKind(kind)
	}
	return nil
}

func (n *network) setLinkKind(kind string) {
	n.mu.Lock()
	n.LinkKind = kind
	n.mu.Unlock()
}

func toAPIPools(pools []ipam.PoolConfig) []api.Pool {
	out := make([]api.Pool, 0, len(pools))
	for _, p := range pools {
		out = append(out, api.Pool{Subnet: p.Subnet, Gateway: p.Gateway, IPRange: p.IPRange, Aux: p.Aux})
	}
	return out
}

func fromAPIPools(pools []api.Pool) []ipam.PoolConfig {
	out := make([]ipam.PoolConfig, 0, len(pools))
	for _, p := range pools {
		out = append(out, ipam.PoolConfig{Subnet: p.Subnet, Gateway: p.Gateway, IPRange: p.IPRange, Aux: p.Aux})
	}
	return out
}

// RemoveNetwork removes a network with no endpoints. A cluster network
// leaves etcd first (leaveFirst): a removal etcd does not take is
// refused, with the network left as it was. Then state goes, then the
// owned link: a crash between them leaves a marked link that no network
// needs, which Reconcile removes.
func (a *Engine) RemoveNetwork(ctx context.Context, ref string) (err error) {
	a.netOps.Lock()
	defer a.netOps.Unlock()
	n, err := a.lookup(ref)
	if err != nil {
		return err
	}
	a.removals.wait(ctx) // endpoints being removed do not keep it in use
	if err := n.quarantineHolds(); err != nil {
		return err
	}
	if err := a.carriesOthers(n); err != nil {
		return err
	}
	if err := n.startRemoval(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			n.cancelRemoval()
		}
	}()
	cs, _ := n.space.(*cluster.Space)
	if cs != nil {
		if err := a.leaveFirst(ctx, n, cs); err != nil {
			return err
		}
		crashpoint.Hit("network-rm:after-leave")
	}
	var inUse *store.InUseError
	if err := a.store.DeleteNetwork(n.ID); err != nil {
		if cs != nil {
			a.stayInCluster(ctx, n, cs)
		}
		if errors.As(err, &inUse) {
			return conflict(err)
		}
		return fmt.Errorf("remove network %s: %w", n.name(), err)
	}
	a.mu.Lock()
	delete(a.nets, n.ID)
	a.mu.Unlock()
	crashpoint.Hit("network-rm:after-state")
	// The state is gone: the kernel objects go too, even if the client
	// does not wait for the answer (nothing removes a live parent's
	// programs later).
	if err := a.dropNetwork(context.WithoutCancel(ctx), n); err != nil {
		a.log.Warn("network removed, but some of its kernel objects are left (err says which)", "network", n.name(), "err", err)
	}
	if cs != nil {
		a.forgetClusterFiles(n.name(), n.ID)
	}
	a.log.Info("network removed", "name", n.name(), "id", n.ID[:12])
	return nil
}

// startRemoval refuses n's removal while it has endpoints in the index
// (an attach admitted whose record is not on disk yet among them: the
// store alone would let the removal through), and marks it removing, so
// that no attach is admitted from now on (its health). Caller holds
// netOps.
func (n *network) startRemoval() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if eps := n.endpoints(); len(eps) > 0 {
		names := make([]string, 0, len(eps))
		for _, e := range sortedByName(eps) {
			names = append(names, e.Name)
		}
		return conflict(&store.InUseError{Network: n.name(), Endpoints: names})
	}
	n.removing = true
	return nil
}

// cancelRemoval takes startRemoval's mark back: the removal was refused.
func (n *network) cancelRemoval() {
	n.mu.Lock()
	n.removing = false
	n.mu.Unlock()
}

// dropNetwork removes a network that is no longer in the index from the
// datapath and deletes its link if mvlan owns it. Caller holds netOps.
func (a *Engine) dropNetwork(ctx context.Context, n *network) error {
	return errors.Join(a.removeShim(ctx, n), a.detachNetwork(ctx, n), a.deleteOwnedLink(n))
}

// deleteOwnedLink deletes the network's parent if mvlan made it: it must
// carry the network's mark, so a link the operator made in its place since
// is left alone.
func (a *Engine) deleteOwnedLink(n *network) error {
	if !n.ParentKind.owned() {
		return nil
	}
	l, err := a.host.Link(n.Parent)
	if errors.Is(err, link.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Alias != a.alias("net", n.ID) {
		a.log.Warn("parent is not the link mvlan made; leaving it", "network", n.name(), "link", n.Parent, "alias", l.Alias)
		return nil
	}
	return a.host.Delete(n.Parent)
}

// Networks returns every network with its status and endpoint count.
func (a *Engine) Networks() ([]api.Network, error) {
	nets := a.networkList()
	out := make([]api.Network, 0, len(nets))
	for _, n := range nets {
		out = append(out, a.view(n, false))
	}
	return out, nil
}

// Network returns one network by reference, with its endpoints.
func (a *Engine) Network(ref string) (api.Network, error) {
	n, err := a.lookup(ref)
	if err != nil {
		return api.Network{}, err
	}
	return a.view(n, true), nil
}

// view is n as the API shows it; withEndpoints embeds its endpoints.
func (a *Engine) view(n *network, withEndpoints bool) api.Network {
	return n.view(withEndpoints)
}

// full reports whether n's own pools have no free address in their
// ranges of a family a new endpoint takes (IPv4; IPv6 on a network with
// --ipv6). A DHCP network's addresses are its server's, a cluster
// network's come from blocks: neither is full here. Caller holds n.mu.
func (n *network) full() bool {
	sp, ok := n.space.(*ipam.Space)
	if !ok || n.DHCP {
		return false
	}
	var has, free [2]bool
	for _, u := range sp.Usage() {
		f := familyIndex(!u.Subnet.Addr().Is4())
		has[f] = true
		free[f] = free[f] || u.FreeInRange >= 1
	}
	return (has[0] && !free[0]) || (n.IPv6 && has[1] && !free[1])
}

// view is n as the API shows it; withEndpoints embeds its endpoints.
func (n *network) view(withEndpoints bool) api.Network {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.stored()
	v.Status = n.health().String()
	v.Scope = scopeOf(n.Options)
	v.EndpointCount = len(n.eps)
	v.Full = n.full()
	v.HostShim = n.shimView()
	v.ParentAltNames = slices.Clone(n.parentAltNames)
	if withEndpoints {
		for _, e := range sortedByName(n.endpoints()) {
			ae := e.api()
			ae.Network = n.name()
			v.Endpoints = append(v.Endpoints, ae)
		}
	}
	return v
}
