package enginetest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/link"
)

// host is the Kernel as engine.Host.
type host Kernel

func (h *host) k() *Kernel { return (*Kernel)(h) }

func (h *host) Link(name string) (link.Info, error) {
	if l, ok := h.k().HostLink(name); ok {
		return l, nil
	}
	return link.Info{}, notFound("link " + name)
}

// Addrs: the in-memory kernel's host links have no addresses.
func (h *host) Addrs(name string) ([]netip.Addr, error) {
	if _, ok := h.k().HostLink(name); !ok {
		return nil, notFound("link " + name)
	}
	return nil, nil
}

func (h *host) Links() ([]link.Info, error) {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]link.Info, 0, len(k.host))
	for _, l := range k.host {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b link.Info) int { return a.Index - b.Index })
	return out, nil
}

func (h *host) CreateVLAN(_ context.Context, p link.Parent, alias string) error {
	k := h.k()
	lower, ok := k.HostLink(p.Lower)
	if !ok {
		return notFound("link " + p.Lower)
	}
	if _, ok := k.HostLink(p.Name); ok {
		return fmt.Errorf("link %s: %w", p.Name, link.ErrExists)
	}
	k.AddHostLink(link.Info{Name: p.Name, Kind: "vlan", Alias: alias, Up: true, VID: p.VID, ParentIndex: lower.Index})
	return nil
}

func (h *host) CreateHostOnly(_ context.Context, name, alias string) (string, error) {
	h.k().AddHostLink(link.Info{Name: name, Kind: "dummy", Alias: alias, Up: true})
	return "dummy", nil
}

// CreateShim adds the shim as a host link with its host addresses.
func (h *host) CreateShim(_ context.Context, s link.ShimSpec) error {
	k := h.k()
	parent, ok := k.HostLink(s.Parent)
	if !ok {
		return notFound("link " + s.Parent)
	}
	if _, ok := k.HostLink(s.Name); ok {
		return fmt.Errorf("link %s: %w", s.Name, link.ErrExists)
	}
	l := k.AddHostLink(link.Info{Name: s.Name, Kind: "macvlan", Alias: s.Alias, Up: true, MAC: s.MAC, ParentIndex: parent.Index})
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, a := range s.Addrs {
		k.nets[HostPath].addrs[l.Index] = append(k.nets[HostPath].addrs[l.Index], netip.PrefixFrom(a, a.BitLen()))
	}
	return nil
}

// SetShimAddrs makes the addresses of link name exactly addrs (host
// addresses) and sets it up.
func (h *host) SetShimAddrs(name string, addrs []netip.Addr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.host[name]
	if !ok {
		return notFound("link " + name)
	}
	l.Up = true
	k.host[name] = l
	var ps []netip.Prefix
	for _, a := range addrs {
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	k.nets[HostPath].addrs[l.Index] = ps
	return nil
}

// HostAddrs returns the addresses of the host link name.
func (k *Kernel) HostAddrs(name string) []netip.Prefix {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.nets[HostPath].addrs[k.host[name].Index])
}

// FlushHostAddrs removes the addresses of the host link name behind the
// engine's back.
func (k *Kernel) FlushHostAddrs(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.nets[HostPath].addrs, k.host[name].Index)
}

// ShimRoutes returns the routes SetShimRoutes set on the link name.
func (h *host) ShimRoutes(name string) ([]netip.Addr, error) {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.routes[name]), nil
}

// SetShimRoutes records dsts as the routes of link name.
func (h *host) SetShimRoutes(name string, _, dsts []netip.Addr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.syncs++
	if _, ok := k.host[name]; !ok {
		return notFound("link " + name)
	}
	if k.routes == nil {
		k.routes = map[string][]netip.Addr{}
	}
	k.routes[name] = slices.Clone(dsts)
	return nil
}

// AddShimRoutes adds dsts to the routes of link name.
func (h *host) AddShimRoutes(name string, _, dsts []netip.Addr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.host[name]; !ok {
		return notFound("link " + name)
	}
	if k.routes == nil {
		k.routes = map[string][]netip.Addr{}
	}
	for _, d := range dsts {
		if !slices.Contains(k.routes[name], d) {
			k.routes[name] = append(k.routes[name], d)
		}
	}
	return nil
}

// DeleteShimRoutes takes dsts out of the routes of link name.
func (h *host) DeleteShimRoutes(name string, dsts []netip.Addr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.host[name]; !ok {
		return notFound("link " + name)
	}
	k.routes[name] = slices.DeleteFunc(k.routes[name], func(a netip.Addr) bool { return slices.Contains(dsts, a) })
	return nil
}

// Stats are zero: the fake passes no traffic.
func (h *host) Stats(name string) (link.Stats, error) {
	if _, ok := h.k().HostLink(name); !ok {
		return link.Stats{}, notFound("link " + name)
	}
	return link.Stats{}, nil
}

// StickHostLink makes the next n deletions of host link name fail.
func (k *Kernel) StickHostLink(name string, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.delFails == nil {
		k.delFails = map[string]int{}
	}
	k.delFails[name] = n
}

func (h *host) Delete(name string) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.host[name]; !ok {
		return nil
	}
	if k.delFails[name] > 0 {
		k.delFails[name]--
		return fmt.Errorf("enginetest: link %s cannot be deleted", name)
	}
	delete(k.host, name)
	delete(k.routes, name) // a link's routes go with it
	k.deleted = append(k.deleted, name)
	return nil
}

func (h *host) DeleteHalfMade(path, ifName string, mac net.HardwareAddr) error {
	return h.deleteHalfMade(path, ifName, mac, true)
}

func (h *host) DeleteBorn(path, ifName string, mac net.HardwareAddr) error {
	return h.deleteHalfMade(path, ifName, mac, false)
}

func (h *host) deleteHalfMade(path, ifName string, mac net.HardwareAddr, temps bool) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		n.links = slices.DeleteFunc(n.links, func(l link.Info) bool {
			temp := strings.HasPrefix(l.Name, "mvt")
			return temps && temp || (l.Name == ifName || temp) && l.Alias == "" && len(mac) > 0 && bytes.Equal(l.MAC, mac)
		})
	}
	return nil
}

func (h *host) DeleteByAlias(alias string) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, l := range k.host {
		if l.Alias == alias {
			delete(k.host, name)
			k.deleted = append(k.deleted, name)
		}
	}
	return nil
}

func (h *host) AttachEndpoint(_ context.Context, s link.EndpointSpec) error {
	k := h.k()
	k.mu.Lock()
	gated := s.NetnsPath
	if to, ok := k.spareFor[gated]; ok { // a spare: gated by where it will be
		gated = to
	}
	k.mu.Unlock()
	k.pass(k.gates, gated)
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nets[s.NetnsPath]
	if n == nil {
		return notFound("netns " + s.NetnsPath)
	}
	parent, ok := k.host[s.Parent]
	if !ok {
		return notFound("parent " + s.Parent)
	}
	for _, l := range n.links {
		if l.Name == s.IfName {
			return fmt.Errorf("link %s in %s: %w", s.IfName, s.NetnsPath, link.ErrExists)
		}
	}
	// As the kernel shows it in the namespace: its lower link, the
	// parent, is elsewhere (the host's).
	l := link.Info{Name: s.IfName, Kind: "macvlan", Alias: s.Alias, Index: k.index(), Up: true, MAC: s.MAC,
		ParentIndex: parent.Index, LowerElsewhere: true, LowerOnHost: true, Macvlan: &link.MacvlanConf{Mode: cmp.Or(s.Mode, "bridge")}}
	n.links = append(n.links, l)
	n.addrs[l.Index] = slices.Clone(s.Addrs)
	if s.BeforeUp != nil {
		// As the real one: the datapath's turn comes before the link is
		// up (it calls back into the in-memory kernel).
		k.mu.Unlock()
		err := s.BeforeUp(l.Index)
		k.mu.Lock()
		if err != nil {
			n.links = slices.DeleteFunc(n.links, func(o link.Info) bool { return o.Index == l.Index })
			delete(n.addrs, l.Index)
			return err
		}
	}
	if wait := time.Until(k.going[s.MAC.String()]); wait > 0 { // up: the parent has the MAC
		if s.MACBusyWait < wait {
			n.links = slices.DeleteFunc(n.links, func(o link.Info) bool { return o.Index == l.Index })
			delete(n.addrs, l.Index)
			return fmt.Errorf("set %s up: %w", s.IfName, unix.EADDRINUSE)
		}
		k.mu.Unlock()
		time.Sleep(wait)
		k.mu.Lock()
	}
	n.gateways = append(n.gateways, s.Gateways...) // the default routes come after up
	return nil
}

func (h *host) DetachEndpoint(_ context.Context, path, ifName string) error {
	h.k().RemoveNetnsLink(path, ifName)
	return nil
}

func (h *host) DetachLink(_ context.Context, path string, ifindex int) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		n.links = slices.DeleteFunc(n.links, func(l link.Info) bool { return l.Index == ifindex })
		n.gateways = nil // the routes went with the link, as RemoveNetnsLink
	}
	return nil
}

// AnnounceEndpoint notes s's addresses (Announced lists them).
func (h *host) AnnounceEndpoint(s link.EndpointSpec, _ int) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.announce = append(k.announce, s.Addrs...)
	return nil
}

// Announced lists the addresses AnnounceEndpoint announced, in order.
func (k *Kernel) Announced() []netip.Prefix {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.announce)
}

// SilenceEndpoint sets the endpoint's link (by index, else alias) down.
func (h *host) SilenceEndpoint(_ context.Context, path string, ifindex int, alias string) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		for i := range n.links {
			if ifindex != 0 && n.links[i].Index == ifindex && n.links[i].Kind == "macvlan" || n.links[i].Alias == alias {
				n.links[i].Up = false
				return nil
			}
		}
	}
	return notFound(fmt.Sprintf("link %d (%s) in %s", ifindex, alias, path))
}

func (h *host) CreateHandoff(_ context.Context, s link.HandoffSpec) (string, error) {
	k := h.k()
	p, ok := k.HostLink(s.Parent)
	if !ok {
		return "", notFound("parent " + s.Parent)
	}
	l := k.AddHostLink(link.Info{Name: fmt.Sprintf("%s%d", link.TempPrefix, k.next+1), Kind: "macvlan", Alias: s.Alias, MAC: s.MAC, ParentIndex: p.Index,
		Macvlan: &link.MacvlanConf{Mode: cmp.Or(s.Mode, "bridge")}})
	return l.Name, nil
}

// WatchLinks sends no events; it ends with the error BreakLinkWatch gives.
func (h *host) WatchLinks(ctx context.Context, _ func(link.LinkEvent)) error {
	k := h.k()
	k.mu.Lock()
	k.watches++
	k.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil
	case err := <-k.watchErr:
		return err
	}
}

// BreakLinkWatch ends the engine's link watch with err, as the kernel
// does when it drops events (ENOBUFS).
func (k *Kernel) BreakLinkWatch(err error) { k.watchErr <- err }

// LinkWatches is how many times an engine subscribed to link events.
func (k *Kernel) LinkWatches() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.watches
}

// WatchNetns: nothing happens in the in-memory kernel's namespaces.
func (h *host) WatchNetns(ctx context.Context, listening func(), _ func(link.NetnsEvent)) error {
	listening()
	<-ctx.Done()
	return nil
}

// NetnsID is the namespace's inode: unique, like the kernel's IDs.
func (h *host) NetnsID(path string) (int, error) {
	ino, err := (*namespaces)(h).Check(path)
	return int(ino), err
}

func (h *host) Close() error { return nil }
