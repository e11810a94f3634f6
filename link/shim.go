package link

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// ShimRouteProtocol marks the host routes a shim carries (rtnetlink's
// protocol field, "proto 109" in ip route): routes with it on a shim are
// mvlan's to add and remove; nothing else on the link is touched.
const ShimRouteProtocol netlink.RouteProtocol = 109

// ShimSpec describes the host's own macvlan on a network's parent: the
// link through which the host reaches the network's containers.
type ShimSpec struct {
	Name   string           // e.g. mvh-pub_net
	Parent string           // the network's parent link
	MAC    net.HardwareAddr // unicast, stable across re-creation
	Alias  string           // IFLA_IFALIAS: mvlan/<agent>/shim/<network id>
	// Addrs are added as host addresses (/32, /128), so the shim brings
	// no subnet route: the host's own routing to the subnet stays as is.
	Addrs []netip.Addr
	// BeforeUp, if set, runs once the shim has its addresses, still down
	// and under its temporary name, with its ifindex: the caller's
	// datapath knows it before its first frames. An error undoes it.
	BeforeUp func(ifindex int) error
}

// CreateShim creates the shim in h's namespace: a bridge-mode macvlan of
// s.Parent, marked with s.Alias under a temporary name, with its addresses
// and its sysctls (shimConf), then renamed to s.Name and brought up. On failure nothing
// is left.
func (h *Host) CreateShim(ctx context.Context, s ShimSpec) error {
	if err := checkName("shim link", s.Name); err != nil {
		return err
	}
	if len(s.MAC) != 6 || s.MAC[0]&1 != 0 {
		return fmt.Errorf("shim %s: MAC %q is not a unicast Ethernet address", s.Name, s.MAC)
	}
	parent, err := linkByName(h.nl, s.Parent)
	if err != nil {
		return fmt.Errorf("shim %s: parent %w", s.Name, err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.ParentIndex, attrs.HardwareAddr = parent.Attrs().Index, s.MAC
	mv := &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
	v6 := slices.ContainsFunc(s.Addrs, netip.Addr.Is6)
	prepare := func(tmp string) error {
		l, err := linkByName(h.nl, tmp)
		if err != nil {
			return err
		}
		if err := h.shimConf(l, tmp, v6); err != nil {
			return err
		}
		hosts := make([]netip.Prefix, len(s.Addrs))
		for i, a := range s.Addrs {
			hosts[i] = netip.PrefixFrom(a, a.BitLen())
		}
		if err := addAddrs(h.nl, l, hosts); err != nil || s.BeforeUp == nil {
			return err
		}
		return s.BeforeUp(l.Attrs().Index)
	}
	if err := h.createLink(ctx, mv, s.Name, s.Alias, prepare); err != nil {
		return fmt.Errorf("create shim %s on %s: %w", s.Name, s.Parent, err)
	}
	return nil
}

// shimConf sets the sysctls of the shim l (named tmp, still down). The
// host answers ARP for its other addresses only on their own links
// (arp_ignore=1): a LAN request for the parent's address reaches the shim
// too, and an answer from it, with the shim's MAC, would be dropped by its
// egress program as spoofed. Its requests use its own address
// (arp_announce=2). Router advertisements are ignored (accept_ra=0),
// IPv6 is disabled without an IPv6 address, and with one its link-local
// is EUI-64 (addr_gen_mode=0), the one the datapath allows, whatever the
// host's default.
func (h *Host) shimConf(l netlink.Link, tmp string, v6 bool) error {
	idx := l.Attrs().Index
	if err := nsthread.Do(h.ns, func() error {
		if err := setIPv4Conf(idx, "arp_ignore, arp_announce", [2]uint32{ipv4DevconfARPIgnore, 1},
			[2]uint32{ipv4DevconfARPAnnounce, 2}); err != nil {
			return err
		}
		return writeIPv6Conf(tmp, "accept_ra", "0\n")
	}); err != nil {
		return err
	}
	if err := setDisableIPv6(h.ns, tmp, !v6); err != nil || !v6 {
		return err
	}
	if err := h.nl.LinkSetIP6AddrGenMode(l, 0); err != nil {
		return fmt.Errorf("set addr_gen_mode on %s: %w", tmp, err)
	}
	return nil
}

// SetShimAddrs makes the addresses of the shim called name exactly addrs
// (host addresses; its IPv6 link-locals are left alone) and sets it up: an
// address someone flushed, or an IPv6 one a down/up took, comes back, one
// the shim no longer has goes. A shim given its first IPv6 address gets
// IPv6 (with an EUI-64 link-local) first. Idempotent; a shim that is
// right is not changed (no link event).
func (h *Host) SetShimAddrs(name string, addrs []netip.Addr) error {
	l, err := linkByName(h.nl, name)
	if err != nil {
		return err
	}
	have, err := addrList(h.nl, l, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	want := map[netip.Prefix]bool{}
	for _, a := range addrs {
		want[netip.PrefixFrom(a, a.BitLen())] = true
	}
	for _, ha := range have {
		a, _ := netip.AddrFromSlice(ha.IP)
		a = a.Unmap()
		ones, _ := ha.Mask.Size()
		p := netip.PrefixFrom(a, ones)
		switch {
		case isIPv6LinkLocal(a):
		case want[p]:
			delete(want, p)
		default:
			if err := h.nl.AddrDel(l, &ha); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("delete address %s of %s: %w", p, name, err)
			}
		}
	}
	missing := slices.Collect(maps.Keys(want))
	if err := h.shimARP(l, name); err != nil {
		return err
	}
	if err := h.shimIPv6(l, name, slices.ContainsFunc(addrs, netip.Addr.Is6), missing); err != nil {
		return err
	}
	if err := addAddrs(h.nl, l, missing); err != nil {
		return fmt.Errorf("shim %s: %w", name, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", name, err)
		}
	}
	return nil
}

// shimARP gives the shim l (named name) arp_ignore=1 and arp_announce=2
// (shimConf) when it does not have them: a shim an older agent made kept
// the host's defaults. Read first (the agent's procfs instance) and
// written only when they differ: each write is a link event of the shim,
// and a link event has the agent attach it again.
func (h *Host) shimARP(l netlink.Link, name string) error {
	v, err := h.readConf("ipv4", name, "arp_ignore", "arp_announce")
	if err != nil {
		return fmt.Errorf("read the ARP settings of %s: %w", name, err)
	}
	if v[0] == "1" && v[1] == "2" {
		return nil
	}
	idx := l.Attrs().Index
	return nsthread.Do(h.ns, func() error {
		return setIPv4Conf(idx, "arp_ignore, arp_announce", [2]uint32{ipv4DevconfARPIgnore, 1},
			[2]uint32{ipv4DevconfARPAnnounce, 2})
	})
}

// shimIPv6 makes the IPv6 settings of the shim l (named name) right when
// it is to have an IPv6 address (v6): its link-local EUI-64
// (addr_gen_mode=0; a shim an older agent made may not have it) and, when
// an IPv6 address is missing from it (it may have been made without
// IPv6), IPv6 enabled. Only what is not so already: each change is a
// link event, and a link event of the shim has the agent make it right
// again (an address that cannot be added must not make that a loop).
func (h *Host) shimIPv6(l netlink.Link, name string, v6 bool, missing []netip.Prefix) error {
	if !v6 {
		return nil
	}
	v, err := h.readConf("ipv6", name, "addr_gen_mode", "disable_ipv6")
	if err != nil {
		return fmt.Errorf("read the IPv6 settings of %s: %w", name, err)
	}
	mode, disabled := v[0], v[1]
	if mode != "0" {
		if err := h.nl.LinkSetIP6AddrGenMode(l, 0); err != nil {
			return fmt.Errorf("set addr_gen_mode on %s: %w", name, err)
		}
	}
	if disabled == "0" || !slices.ContainsFunc(missing, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
		return nil
	}
	return setDisableIPv6(h.ns, name, false)
}

// readConf reads the settings keys of link name in net.FAM.conf of h's
// namespace (netConf), in that order.
func (h *Host) readConf(fam, name string, keys ...string) ([]string, error) {
	v := make([]string, len(keys))
	err := nsthread.Do(h.ns, func() error {
		return netConf(fam, name, func(dfd int) (err error) {
			for i, k := range keys {
				if v[i], err = readAt(dfd, k); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return v, err
}

// readAt reads the file name in directory dfd, without surrounding space.
func readAt(dfd int, name string) (string, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var b [16]byte
	n, err := unix.Read(fd, b[:])
	return strings.TrimSpace(string(b[:max(n, 0)])), err
}

// ShimRoutes returns the destinations of the host routes mvlan put on the
// link called name (ShimRouteProtocol, main table).
func (h *Host) ShimRoutes(name string) ([]netip.Addr, error) {
	routes, err := h.shimRoutes(name)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(routes))
	for _, r := range routes {
		a, _ := netip.AddrFromSlice(r.Dst.IP)
		out = append(out, a.Unmap())
	}
	return out, nil
}

func (h *Host) shimRoutes(name string) ([]netlink.Route, error) {
	l, err := linkByName(h.nl, name)
	if err != nil {
		return nil, err
	}
	filter := &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN, Protocol: ShimRouteProtocol}
	mask := netlink.RT_FILTER_OIF | netlink.RT_FILTER_TABLE | netlink.RT_FILTER_PROTOCOL
	routes, err := listRoutes(h.nl, unix.AF_UNSPEC, filter, mask)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", name, err)
	}
	return slices.DeleteFunc(routes, func(r netlink.Route) bool { return r.Dst == nil }), nil
}

// SetShimRoutes makes the host routes through the link called name exactly
// one per address of dsts (a /32 or /128, scope link), each with the
// shim's address of its family in srcs as the source; a destination of a
// family the shim has no address of gets no route. Other routes on the
// link are left alone. Idempotent: a crash half way is finished by the
// next call.
func (h *Host) SetShimRoutes(name string, srcs, dsts []netip.Addr) error {
	have, err := h.shimRoutes(name)
	if err != nil {
		return err
	}
	l, err := linkByName(h.nl, name)
	if err != nil {
		return err
	}
	want := map[netip.Addr]netip.Addr{} // destination -> source
	for _, d := range dsts {
		if src, ok := shimSource(srcs, d); ok {
			want[d] = src
		}
	}
	var errs []error
	for _, r := range have {
		d, _ := netip.AddrFromSlice(r.Dst.IP)
		ones, _ := r.Dst.Mask.Size()
		src, ok := want[d.Unmap()]
		if ok && ones == d.BitLen() && r.Src.Equal(net.IP(src.AsSlice())) {
			delete(want, d.Unmap())
			continue
		}
		if err := h.nl.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s dev %s: %w", r.Dst, name, err))
		}
	}
	for d, src := range want {
		if err := h.nl.RouteReplace(shimRoute(l.Attrs().Index, d, src)); err != nil {
			errs = append(errs, fmt.Errorf("add route %s dev %s src %s: %w", d, name, src, err))
		}
	}
	return errors.Join(errs...)
}

// AddShimRoutes adds (or replaces) the host route through the link called
// name to each of dsts, as SetShimRoutes makes them, without looking at
// the link's other routes: an attach costs a route per address of its
// own, however many the shim carries.
func (h *Host) AddShimRoutes(name string, srcs, dsts []netip.Addr) error {
	l, err := linkByName(h.nl, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dsts {
		src, ok := shimSource(srcs, d)
		if !ok {
			continue
		}
		if err := h.nl.RouteReplace(shimRoute(l.Attrs().Index, d, src)); err != nil {
			errs = append(errs, fmt.Errorf("add route %s dev %s src %s: %w", d, name, src, err))
		}
	}
	return errors.Join(errs...)
}

// DeleteShimRoutes deletes mvlan's host routes through the link called
// name to each of dsts; one that is not there is not an error.
func (h *Host) DeleteShimRoutes(name string, dsts []netip.Addr) error {
	l, err := linkByName(h.nl, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dsts {
		// Scope "nowhere" matches any scope: an IPv4 delete of scope 0
		// (universe) would miss the link-scope route (ESRCH).
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: prefixIPNet(netip.PrefixFrom(d, d.BitLen())),
			Table: unix.RT_TABLE_MAIN, Protocol: ShimRouteProtocol, Scope: netlink.SCOPE_NOWHERE}
		if err := h.nl.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s dev %s: %w", d, name, err))
		}
	}
	return errors.Join(errs...)
}

// shimSource is the shim's address of d's family in srcs, the source of
// the route to d; false when the shim has none.
func shimSource(srcs []netip.Addr, d netip.Addr) (netip.Addr, bool) {
	if i := slices.IndexFunc(srcs, func(s netip.Addr) bool { return s.Is4() == d.Is4() }); i >= 0 {
		return srcs[i], true
	}
	return netip.Addr{}, false
}

// shimRoute is the host route to d through the shim with index idx.
func shimRoute(idx int, d, src netip.Addr) *netlink.Route {
	return &netlink.Route{LinkIndex: idx, Dst: prefixIPNet(netip.PrefixFrom(d, d.BitLen())),
		Src: net.IP(src.AsSlice()), Scope: netlink.SCOPE_LINK, Protocol: ShimRouteProtocol}
}

// Stats are a link's traffic counters as the kernel keeps them.
type Stats struct {
	RxPackets, RxBytes, TxPackets, TxBytes uint64
}

// Stats returns the counters of the link called name.
func (h *Host) Stats(name string) (Stats, error) {
	l, err := linkByName(h.nl, name)
	if err != nil {
		return Stats{}, err
	}
	s := l.Attrs().Statistics
	if s == nil {
		return Stats{}, fmt.Errorf("link %s: the kernel gave no statistics", name)
	}
	return Stats{RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets, TxBytes: s.TxBytes}, nil
}
