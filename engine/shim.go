package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
	"github.com/mvlan/mvlan/netconf"
)

// The host shim (-o host_shim): a bridge-mode macvlan of the network's
// parent in the host namespace, through which the host reaches the
// network's containers (the kernel passes no frame between a parent and
// its macvlans). It is stored as the network's host_shim option with the
// addresses it holds; its name and MAC derive from the network, so a
// re-made shim is the same link to the containers' neighbour caches. Its
// addresses are host addresses (/32, /128) and the host gets one host
// route per container address through it (link.SetShimRoutes), never a
// subnet route: the host's own route to the rest of the subnet (its
// uplink, the router) is left as it was. In the datapath it is an
// endpoint of its network: the cross-network rule and the anti-spoofing
// checks apply to it like to a container.
//
// Crash order is the owned parent's: link (marked shim/ID) first, state
// second when it comes; state first, link second when it goes. A marked
// shim no stored network has is stale and removed on start.

// shimOwner holds the shim's addresses in the network's space.
const shimOwner = "the host shim"

// shimPrefix starts the names of shims.
const shimPrefix = "mvh-"

// shimName is the name of n's shim: mvh-NAME, or mvh-<id11> when the
// name does not fit in a link name or is not the operator's (a Docker
// network's name may change: RenameNetwork; NameFrom is set at creation
// for those, so their shim keeps one name).
func shimName(n *network) string {
	if name := shimPrefix + n.name(); len(name) <= link.MaxNameLen && n.nameFrom() == api.NameGiven {
		return name
	}
	return shimPrefix + n.ID[:link.MaxNameLen-len(shimPrefix)]
}

// shimMAC is the shim's MAC: locally administered, unicast, from n's ID.
func shimMAC(n *network) net.HardwareAddr {
	sum := sha256.Sum256([]byte("mvlan host shim " + n.ID))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfc | 0x02
	return mac
}

// shimState is a network's shim as the engine keeps it; guarded by the
// network's mu. A nil *shimState is no shim.
type shimState struct {
	addrs   []netip.Addr
	cookie  uint64 // endpoint table key, once attached
	ifindex int
	err     error // what is wrong with it, nil when it is right
}

// shimAddrsOf reads the shim's addresses from a stored network's options
// (nil when it has none).
func shimAddrsOf(opts map[string]string) ([]netip.Addr, error) {
	v, ok := opts[netconf.OptHostShim]
	if !ok {
		return nil, nil
	}
	var out []netip.Addr
	for _, s := range strings.Split(v, ",") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("stored option %s=%q: %w", netconf.OptHostShim, v, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// withShim returns opts with the host_shim option of addrs (none when
// addrs is empty); opts itself is not changed.
func withShim(opts map[string]string, addrs []netip.Addr) map[string]string {
	out := maps.Clone(opts)
	delete(out, netconf.OptHostShim)
	if len(addrs) == 0 {
		return out
	}
	if out == nil {
		out = map[string]string{}
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	out[netconf.OptHostShim] = strings.Join(s, ",")
	return out
}

// checkShimFor refuses a host shim h that a network cannot have: auto on
// a DHCP network (name), whose server may lease any address of the subnet
// to anyone.
func checkShimFor(name string, dhcp, dockerIPAM bool, h netconf.HostShim) error {
	switch {
	case dhcp && h.Auto:
		return invalid(fmt.Errorf("network %s: %s=auto: the addresses of a DHCP network (--ipam-driver dhcp) are its DHCP server's to lease, so mvlan cannot pick one for the host; give the address the server reserves for the host, -o %s=IP[,IP6]",
			name, netconf.OptHostShim, netconf.OptHostShim))
	case dockerIPAM && h.Auto:
		return invalid(fmt.Errorf("network %s: %s=auto: Docker's IPAM driver assigns this network's addresses (it was made by docker network create without --ipam-driver mvlan) and would give the shim's to a container; give -o %s=IP outside the network's --ip-range, or make the network with --ipam-driver mvlan",
			name, netconf.OptHostShim, netconf.OptHostShim))
	}
	return nil
}

// reserveShim holds the addresses h asks for in n's space: with auto one
// of each family the network has. They count as held (n.used): the shim
// is a neighbour the containers' caches learn. An address an endpoint has
// (a DHCP network's leases are not in its space) is refused. Caller holds
// n.mu.
func (n *network) reserveShim(h netconf.HostShim) (addrs []netip.Addr, err error) {
	defer func() {
		if err != nil {
			n.releaseAddrs(addrs)
			addrs = nil
			return
		}
		n.used = n.used.Raise(addrs...)
	}()
	if !h.Auto {
		return n.requestShim(h.Addrs)
	}
	for _, v6 := range []bool{false, true} {
		if !n.space.HasFamily(v6) {
			continue
		}
		p, err := n.space.Allocate(v6, shimOwner)
		if err != nil {
			return addrs, fmt.Errorf("host shim: %w", err)
		}
		addrs = append(addrs, p.Addr())
	}
	if len(addrs) == 0 {
		return nil, invalid(fmt.Errorf("host shim: network %s has no subnet to take the shim's address from; give it one, -o %s=IP[,IP6]", n.name(), netconf.OptHostShim))
	}
	return addrs, nil
}

// requestShim holds addrs in n's space for the shim. Caller holds n.mu.
func (n *network) requestShim(addrs []netip.Addr) (held []netip.Addr, err error) {
	for _, a := range addrs {
		if en := n.byAddr[a]; en != nil {
			return held, invalid(fmt.Errorf("host shim: %s is the address of endpoint %s; pick a free address", a, en.ep.Name))
		}
		if slices.Contains(n.shimGone, a) {
			held = append(held, a) // still held: its link may have it
			continue
		}
		if _, err := n.space.Request(a, shimOwner); err != nil {
			return held, invalid(fmt.Errorf("host shim: %w", err))
		}
		held = append(held, a)
	}
	return held, nil
}

// releaseAddrs gives addrs back to n's space, except those the shim's
// link may still have (shimGone: settleShimGone gives them back). Caller
// holds n.mu.
func (n *network) releaseAddrs(addrs []netip.Addr) {
	for _, a := range addrs {
		if !slices.Contains(n.shimGone, a) {
			n.space.Release(a)
		}
	}
}

// keepShimGone keeps addrs, which n's shim gave up, held in n's space
// while its link may still have them (an endpoint given one would share
// it with the host, which answers ARP for it): until settleShimGone.
// They are held already (the shim's). Caller holds n.mu.
func (n *network) keepShimGone(addrs []netip.Addr) {
	for _, a := range addrs {
		if !slices.Contains(n.shimGone, a) {
			n.shimGone = append(n.shimGone, a)
		}
	}
}

// settleShimGone gives back the addresses the shim gave up, once its link
// is known not to have them (its addresses made n's: attachShim; or the
// link is gone); one the shim has again stays held. Caller holds n.mu.
func (n *network) settleShimGone() {
	gone := n.shimGone
	n.shimGone = nil
	if n.shim != nil {
		gone = without(gone, n.shim.addrs)
	}
	n.releaseAddrs(gone)
}

// holdShimLink holds in n's space the addresses the shim's link l has
// that n's shim does not (a move or a removal that failed, or that a
// crash cut, before the link was changed: the store no longer has them,
// so a start does not hold them), as given up (shimGone), until an attach
// or removal of the link succeeds. An address outside n's subnets is not
// n's to hold.
func (a *Engine) holdShimLink(n *network, l link.Info) {
	have, err := a.ns.Addrs(a.hostNetnsPath(), l.Index)
	if err != nil {
		a.log.Warn("host shim: cannot read the addresses of its link", "network", n.name(), "link", l.Name, "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range have {
		ad := p.Addr()
		if ad.Is6() && ad.IsLinkLocalUnicast() || slices.Contains(n.shimGone, ad) || n.shim != nil && slices.Contains(n.shim.addrs, ad) {
			continue
		}
		if en := n.byAddr[ad]; en != nil {
			a.log.Warn("host shim: its link still has an address an endpoint has", "network", n.name(), "link", l.Name, "addr", ad, "endpoint", en.ep.Name)
			continue
		}
		if _, err := n.space.Request(ad, shimOwner); err == nil {
			n.shimGone = append(n.shimGone, ad)
		}
	}
}

// shimAddrs returns the addresses of n's shim (nil: no shim).
func (n *network) shimAddrs() []netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shim == nil {
		return nil
	}
	return slices.Clone(n.shim.addrs)
}

// createShim makes n's shim link with addrs (link only: no state, no
// datapath, no routes).
func (a *Engine) createShim(ctx context.Context, n *network, addrs []netip.Addr) error {
	err := a.host.CreateShim(ctx, link.ShimSpec{Name: shimName(n), Parent: n.Parent, MAC: shimMAC(n),
		Alias: a.alias("shim", n.ID), Addrs: addrs,
		BeforeUp: func(idx int) error { return a.shimDatapath(ctx, n, idx, shimMAC(n), addrs) }})
	if errors.Is(err, link.ErrExists) {
		return conflict(fmt.Errorf("host shim: a link called %s exists and mvlan did not make it for network %s; remove or rename it", shimName(n), n.name()))
	}
	return err
}

// deleteShim deletes n's shim link if it is the one mvlan made for n.
func (a *Engine) deleteShim(n *network) error {
	l, err := a.host.Link(shimName(n))
	if errors.Is(err, link.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Alias != a.alias("shim", n.ID) {
		a.log.Warn("shim is not the link mvlan made; leaving it", "network", n.name(), "link", l.Name, "alias", l.Alias)
		return nil
	}
	return a.host.Delete(l.Name)
}

// hostNetnsPath is the managed namespace as a path.
func (a *Engine) hostNetnsPath() string {
	if a.cfg.HostNetns == "" {
		return "/proc/self/ns/net"
	}
	return a.cfg.HostNetns
}

// attachShim puts n's shim in the endpoint table as an endpoint of n and
// attaches the endpoint programs to it, makes its addresses exactly n's
// (one flushed or lost on a down/up comes back, one it no longer has
// goes) and sets it up, then sets its routes. Idempotent.
func (a *Engine) attachShim(ctx context.Context, n *network) error {
	addrs := n.shimAddrs()
	if addrs == nil {
		return nil
	}
	l, err := a.host.Link(shimName(n))
	if err != nil {
		return fmt.Errorf("host shim: %w", err)
	}
	cookie, err := a.ns.Cookie(a.hostNetnsPath())
	if err != nil {
		return fmt.Errorf("host shim: %w", err)
	}
	old := n.setShimKey(cookie, l.Index)
	if old != 0 && old != l.Index {
		_ = a.dp.DeleteEndpoint(cookie, old)
	}
	if err := a.shimDatapath(ctx, n, l.Index, l.MAC, addrs); err != nil {
		return fmt.Errorf("host shim %s: %w", l.Name, err)
	}
	if err := a.host.SetShimAddrs(l.Name, addrs); err != nil {
		return fmt.Errorf("host shim: %w", err)
	}
	n.mu.Lock()
	n.settleShimGone() // the link has none of them now
	n.mu.Unlock()
	return a.syncShimRoutes(n)
}

// shimDatapath puts n's shim (link idx in the managed namespace) in the
// endpoint table and attaches the endpoint programs to it; createShim
// does it before the link comes up (receivers drop frames from a MAC the
// table does not know), attachShim again on start.
func (a *Engine) shimDatapath(ctx context.Context, n *network, idx int, mac net.HardwareAddr, addrs []netip.Addr) error {
	cookie, err := a.ns.Cookie(a.hostNetnsPath())
	if err != nil {
		return err
	}
	ep := loader.Endpoint{NetnsCookie: cookie, Ifindex: idx, MAC: mac, IPs: addrs, NetworkID: n.DatapathID,
		Allow: allowOf(netconf.FirstHopOf(n.Options)), HostShim: true}
	if err := a.dp.SetEndpoint(ep); err != nil {
		return err
	}
	return a.dp.AttachEndpoint(ctx, a.cfg.HostNetns, idx, a.modes.Endpoint)
}

// setShimKey records the shim's endpoint key; it returns the ifindex it
// had.
func (n *network) setShimKey(cookie uint64, ifindex int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shim == nil {
		return 0
	}
	old := n.shim.ifindex
	n.shim.cookie, n.shim.ifindex = cookie, ifindex
	return old
}

// removeShim takes n's shim out of the datapath and deletes its link:
// its programs, the link, then its table entry (never a live link
// without its entry).
func (a *Engine) removeShim(ctx context.Context, n *network) error {
	n.mu.Lock()
	s := n.shim
	n.mu.Unlock()
	keyed := s != nil && s.ifindex != 0
	var errs []error
	if keyed {
		errs = append(errs, a.dp.DetachEndpoint(ctx, a.cfg.HostNetns, s.ifindex))
	}
	if err := a.deleteShim(n); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if keyed {
		errs = append(errs, a.dp.DeleteEndpoint(s.cookie, s.ifindex))
	}
	return errors.Join(errs...)
}

// shimView is n's shim as the API shows it. Caller holds n.mu.
func (n *network) shimView() *api.HostShim {
	if n.shim == nil {
		return nil
	}
	v := &api.HostShim{Link: shimName(n), MAC: shimMAC(n).String(), Addrs: slices.Clone(n.shim.addrs), Status: "ok"}
	if n.shim.err != nil {
		v.Status = n.shim.err.Error()
	}
	return v
}

// checkShim reports how n's shim differs from what it should be: the link
// with its mark, its addresses, one host route per endpoint address.
func (a *Engine) checkShim(n *network, present map[string]link.Info) []string {
	n.mu.Lock()
	var want []netip.Addr
	if n.shim != nil {
		want = slices.Clone(n.shim.addrs)
	}
	dsts := make(map[netip.Addr]bool, len(n.byAddr))
	for addr := range n.byAddr {
		dsts[addr] = true
	}
	n.mu.Unlock()
	name := shimName(n)
	l, ok := present[name]
	switch {
	case want == nil && ok && l.Alias == a.alias("shim", n.ID):
		return []string{fmt.Sprintf("network %s: has no host shim but link %s is there", n.name(), name)}
	case want == nil:
		return nil
	case !ok:
		return []string{fmt.Sprintf("network %s: host shim %s is missing", n.name(), name)}
	case l.Alias != a.alias("shim", n.ID):
		return []string{fmt.Sprintf("network %s: link %s is not the host shim mvlan made (alias %q)", n.name(), name, l.Alias)}
	}
	var drift []string
	have, err := a.ns.Addrs(a.hostNetnsPath(), l.Index)
	if err != nil {
		return []string{fmt.Sprintf("network %s: host shim %s: %v", n.name(), name, err)}
	}
	for _, w := range want {
		if !slices.Contains(have, netip.PrefixFrom(w, w.BitLen())) {
			drift = append(drift, fmt.Sprintf("network %s: host shim %s lacks its address %s", n.name(), name, w))
		}
	}
	routes, err := a.host.ShimRoutes(name)
	if err != nil {
		return append(drift, fmt.Sprintf("network %s: host shim %s: %v", n.name(), name, err))
	}
	routed := make(map[netip.Addr]bool, len(routes))
	for _, r := range routes {
		routed[r] = true
		if !dsts[r] {
			drift = append(drift, fmt.Sprintf("network %s: host shim %s routes %s, which no endpoint has", n.name(), name, r))
		}
	}
	for d := range dsts {
		fam := slices.ContainsFunc(want, func(w netip.Addr) bool { return w.Is4() == d.Is4() })
		if fam && !routed[d] {
			drift = append(drift, fmt.Sprintf("network %s: no route to %s through host shim %s", n.name(), d, name))
		}
	}
	return drift
}

// withShimStats adds to each network's counters the kernel's counters of
// its host shim link.
func (a *Engine) withShimStats(stats []api.NetworkStats) []api.NetworkStats {
	byName := map[string]*network{}
	for _, n := range a.networkList() {
		byName[n.name()] = n
	}
	for i := range stats {
		n := byName[stats[i].Network]
		if n == nil || n.shimAddrs() == nil {
			continue
		}
		s, err := a.host.Stats(shimName(n))
		if err != nil {
			continue // missing: doctor reports it, the series pauses
		}
		stats[i].HostShim = &api.Traffic{Rx: api.Count{Packets: s.RxPackets, Bytes: s.RxBytes},
			Tx: api.Count{Packets: s.TxPackets, Bytes: s.TxBytes}}
	}
	return stats
}
