package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/netconf"
)

// UpdateNetwork changes a network's options; only host_shim may change:
// auto or IP[,IP6] turns the shim on (or gives it other addresses: the
// shim stays, shimMove), off removes it. A refused change changes nothing.
func (a *Engine) UpdateNetwork(ctx context.Context, ref string, req api.NetworkUpdate) (api.Network, error) {
	want, err := parseUpdate(req)
	if err != nil {
		return api.Network{}, invalid(err)
	}
	a.netOps.Lock()
	defer a.netOps.Unlock()
	n, err := a.lookup(ref)
	if err != nil {
		return api.Network{}, err
	}
	h, err := netconf.ParseHostShim(want, n.Mode, fromAPIPools(n.Pools), true)
	if err != nil {
		return api.Network{}, invalid(fmt.Errorf("network %s: %w", n.name(), err))
	}
	if err := checkShimFor(n.name(), n.DHCP, n.Options[dockerIPAMOption] == "true", h); err != nil {
		return api.Network{}, err
	}
	if scopeOf(n.Options) == api.ScopeCluster && !h.Off {
		if err := checkClusterConfig(false, true); err != nil {
			return api.Network{}, fmt.Errorf("network %s: %w", n.name(), err)
		}
	}
	have := n.shimAddrs()
	switch {
	case h.Off && have == nil, h.Auto && have != nil, !h.Auto && !h.Off && sameAddrs(h.Addrs, have):
		return a.view(n, false), nil // nothing to change
	case h.Off:
		err = a.shimOff(ctx, n)
	case have == nil:
		err = a.shimOn(ctx, n, h)
	default:
		err = a.shimMove(ctx, n, h.Addrs)
	}
	if err != nil {
		return api.Network{}, err
	}
	return a.view(n, false), nil
}

// parseUpdate returns the host_shim value of req, the only option that
// may change.
func parseUpdate(req api.NetworkUpdate) (string, error) {
	var v string
	found := false
	for _, o := range req.Options {
		k, val, _ := strings.Cut(o, "=")
		if k != netconf.OptHostShim {
			return "", fmt.Errorf("option %q cannot change on an existing network; network update takes -o %s=auto|IP[,IP6]|off (recreate the network to change the rest)", o, netconf.OptHostShim)
		}
		if found {
			return "", fmt.Errorf("option %s is given twice; give it once", netconf.OptHostShim)
		}
		v, found = val, true
	}
	if !found {
		return "", fmt.Errorf("no option to change; use -o %s=auto|IP[,IP6]|off", netconf.OptHostShim)
	}
	return v, nil
}

func sameAddrs(a, b []netip.Addr) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(x netip.Addr) bool { return !slices.Contains(b, x) })
}

// shimOn gives n a shim: addresses reserved, link made, then stored, then
// datapath and routes. Caller holds netOps.
func (a *Engine) shimOn(ctx context.Context, n *network, h netconf.HostShim) (err error) {
	n.mu.Lock()
	ok := n.ok()
	var addrs []netip.Addr
	if o := n.byMAC[string(shimMAC(n))]; ok && o != nil {
		err = conflict(fmt.Errorf("host shim: its MAC %s is endpoint %s's on network %s; re-create that endpoint with another --mac first", shimMAC(n), o.ep.Name, n.name()))
	} else if ok {
		addrs, err = n.reserveShim(h)
	}
	n.mu.Unlock()
	if !ok {
		return conflict(fmt.Errorf("network %s cannot have a shim now: %s", n.name(), a.view(n, false).Status))
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			n.mu.Lock()
			n.releaseAddrs(addrs)
			n.mu.Unlock()
		}
	}()
	if err := a.createShim(ctx, n, addrs); err != nil {
		return err
	}
	crashpoint.Hit("shim-on:after-link")
	n.mu.Lock()
	rec := n.stored()
	n.mu.Unlock()
	rec.Options = withShim(rec.Options, addrs)
	if err := a.store.UpdateNetwork(rec); err != nil {
		return errors.Join(fmt.Errorf("store network %s: %w", n.name(), err), a.deleteShim(n))
	}
	n.mu.Lock()
	n.shim = &shimState{addrs: addrs}
	n.mu.Unlock()
	if err := a.attachShim(ctx, n); err != nil {
		a.setShimErr(n, err)
		a.log.Warn("host shim made but not attached", "network", n.name(), "err", err)
	}
	a.log.Info("host shim on", "network", n.name(), "link", shimName(n), "addrs", addrs)
	return nil
}

// shimMove gives n's shim the addresses want in place of its own: those
// it does not have yet are reserved first (those it keeps stay held), so
// a refused or taken address changes nothing; then the record, with the
// addresses it gives up given back; then the link, its datapath entry and
// routes (attachShim; a start after a crash does the same); the old
// addresses are released once the link no longer has them (attachShim
// succeeded; else the next attach, on start or a link event, that does:
// shimGone). Caller holds netOps.
func (a *Engine) shimMove(ctx context.Context, n *network, want []netip.Addr) error {
	n.mu.Lock()
	ok := n.ok() && n.shim != nil
	var have, added []netip.Addr
	var err error
	if ok {
		have = slices.Clone(n.shim.addrs)
		added, err = n.reserveShim(netconf.HostShim{Addrs: without(want, have)})
	}
	rec := n.stored()
	n.mu.Unlock()
	if !ok {
		return conflict(fmt.Errorf("network %s cannot change its shim now: %s", n.name(), a.view(n, false).Status))
	}
	if err != nil {
		return err
	}
	gone := without(have, want)
	rec.Options = withShim(rec.Options, want)
	if err := a.store.UpdateNetwork(rec, gone...); err != nil {
		n.mu.Lock()
		n.releaseAddrs(added)
		n.mu.Unlock()
		return fmt.Errorf("store network %s: %w", n.name(), err)
	}
	crashpoint.Hit("shim-move:after-state")
	n.mu.Lock()
	n.shim.addrs = slices.Clone(want)
	n.keepShimGone(gone)
	n.mu.Unlock()
	err = a.attachShim(ctx, n)
	a.setShimErr(n, err)
	if err != nil {
		a.log.Warn("host shim has new addresses but is not attached; its old ones stay held until the next agent start or link event attaches it", "network", n.name(), "err", err, "held", gone)
	}
	a.log.Info("host shim addresses changed", "network", n.name(), "link", shimName(n), "from", have, "to", want)
	return nil
}

// without returns the addresses of a that are not in b.
func without(a, b []netip.Addr) []netip.Addr {
	return slices.DeleteFunc(slices.Clone(a), func(x netip.Addr) bool { return slices.Contains(b, x) })
}

// shimOff removes n's shim: state first (with its addresses as given
// back: neighbours cache them), then datapath and link, then the
// addresses, once the link is gone (else on the next agent start or link
// event that removes it: shimGone). Caller holds netOps.
func (a *Engine) shimOff(ctx context.Context, n *network) error {
	n.mu.Lock()
	rec, given := n.stored(), slices.Clone(n.shim.addrs)
	n.mu.Unlock()
	rec.Options = withShim(rec.Options, nil)
	if err := a.store.UpdateNetwork(rec, given...); err != nil {
		return fmt.Errorf("store network %s: %w", n.name(), err)
	}
	crashpoint.Hit("shim-off:after-state")
	err := a.removeShim(ctx, n)
	there := err != nil && a.shimLinkThere(n)
	n.mu.Lock()
	addrs := n.shim.addrs
	n.shim = nil
	n.keepShimGone(addrs)
	if !there {
		n.settleShimGone()
	}
	n.mu.Unlock()
	if err != nil {
		a.log.Warn("host shim off, but not all of it is gone; the next agent start or link event removes it (its addresses stay held until its link is gone)", "network", n.name(), "err", err)
	}
	a.log.Info("host shim off", "network", n.name())
	return nil
}

// shimLinkThere reports whether the link mvlan made as n's shim may be
// there (an error reading it counts as there).
func (a *Engine) shimLinkThere(n *network) bool {
	l, err := a.host.Link(shimName(n))
	if errors.Is(err, link.ErrNotFound) {
		return false
	}
	return err != nil || l.Alias == a.alias("shim", n.ID)
}

func (a *Engine) setShimErr(n *network, err error) {
	n.mu.Lock()
	if n.shim != nil {
		n.shim.err = err
	}
	n.mu.Unlock()
}

// ensureShim makes n's shim right on start and on link events: re-made if
// it is missing, then attached and routed. What it cannot fix is kept as
// the shim's status, and the addresses its link has that the shim gave
// up stay held (holdShimLink). A network with no shim whose shim link is
// there (a removal that failed) has it removed. Caller holds netOps.
func (a *Engine) ensureShim(ctx context.Context, n *network, present map[string]link.Info) {
	addrs := n.shimAddrs()
	if addrs == nil {
		a.dropShimLink(n, present)
		return
	}
	err := func() error {
		l, ok := present[shimName(n)]
		switch {
		case ok && l.Alias != a.alias("shim", n.ID):
			return fmt.Errorf("link %s exists but mvlan did not make it for this network; remove or rename it", l.Name)
		case !ok:
			if err := a.createShim(ctx, n, addrs); err != nil {
				return err
			}
			a.log.Info("recreated host shim", "network", n.name(), "link", shimName(n))
		}
		return a.attachShim(ctx, n)
	}()
	if err != nil {
		a.log.Warn("host shim", "network", n.name(), "err", err)
		if l, ok := present[shimName(n)]; ok && l.Alias == a.alias("shim", n.ID) {
			a.holdShimLink(n, l)
		}
	}
	a.setShimErr(n, err)
}

// shimCheckEvery is how often the host shims are looked at for what was
// taken from them without a link event: an address deleted (the kernel
// takes the IPv4 routes from it with it), a route deleted.
const shimCheckEvery = 5 * time.Second

// repairShims puts back what a shim of a network in order lacks
// (checkShim's drift) through ensureShim, once two looks in a row found
// the same (an attach or removal under way shows for a moment); a
// network operation under way (netOps) leaves it to the next look.
func (a *Engine) repairShims(ctx context.Context) {
	var nets []*network
	for _, n := range a.networkList() {
		n.mu.Lock()
		ok := n.ok()
		n.mu.Unlock()
		if ok && n.shimAddrs() != nil {
			nets = append(nets, n)
		}
	}
	if len(nets) == 0 || !a.netOps.TryLock() {
		return
	}
	defer a.netOps.Unlock()
	seen := a.shimDrift
	a.shimDrift = map[string]string{}
	hl, err := a.listHost()
	if err != nil {
		return
	}
	present := map[string]link.Info{}
	for _, l := range hl.links {
		present[l.Name] = l
	}
	for _, n := range nets {
		drift := strings.Join(a.checkShim(n, present), "; ")
		switch {
		case drift == "":
		case seen[n.ID] != drift:
			a.shimDrift[n.ID] = drift // again at the next look: then repaired
		default:
			a.log.Warn("host shim: putting back what it lacks", "network", n.name(), "drift", drift)
			a.ensureShim(ctx, n, present)
		}
	}
}

// dropShimLink deletes the shim link of n, which has no shim, if it is
// there (shimOff or a start could not delete it), then gives back the
// addresses it had; if it cannot, they stay held.
func (a *Engine) dropShimLink(n *network, present map[string]link.Info) {
	l, ok := present[shimName(n)]
	if !ok || l.Alias != a.alias("shim", n.ID) {
		n.mu.Lock()
		n.settleShimGone()
		n.mu.Unlock()
		return
	}
	if err := a.deleteShim(n); err != nil {
		a.log.Warn("host shim is off but its link cannot be removed; its addresses stay held", "network", n.name(), "link", l.Name, "err", err)
		a.holdShimLink(n, l)
		return
	}
	a.log.Info("removed the link of a host shim that is off", "network", n.name(), "link", l.Name)
	n.mu.Lock()
	n.settleShimGone()
	n.mu.Unlock()
}
