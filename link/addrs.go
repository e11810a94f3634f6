package link

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addrs lists the addresses on link ifindex of the namespace at netnsPath
// (link-local IPv6 ones left out: the kernel adds those on its own).
func Addrs(netnsPath string, ifindex int) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := inNetns(netnsPath, func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(ifindex)
		if err != nil {
			return fmt.Errorf("link %d in %s: %w", ifindex, netnsPath, err)
		}
		out, err = addrsOf(nl, l)
		if err != nil {
			return fmt.Errorf("in %s: %w", netnsPath, err)
		}
		return nil
	}, false)
	return out, err
}

// addrsOf lists the addresses on l, link-local IPv6 ones left out (the
// kernel makes those; IPv4 link-local ones, 169.254/16, are a network's
// like any other).
func addrsOf(nl *netlink.Handle, l netlink.Link) ([]netip.Prefix, error) {
	addrs, err := addrList(nl, l, unix.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ip = ip.Unmap(); !ok || isIPv6LinkLocal(ip) {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out, nil
}

// isIPv6LinkLocal says whether a is an IPv6 link-local address (fe80::/10),
// which the kernel adds to a link on its own. netip's IsLinkLocalUnicast
// alone is also true of IPv4's 169.254/16, which a network may use.
func isIPv6LinkLocal(a netip.Addr) bool { return a.Is6() && a.IsLinkLocalUnicast() }

// HasDefaultRoute reports whether the namespace at netnsPath has a default
// route of the family of gw (IPv6 if gw is) in the main table with the
// metric the kernel gives the routes AttachEndpoint adds, whatever its
// gateway (has: one the endpoint's would clash with, EEXIST, which a
// namespace that had it before the endpoint joined keeps), and whether
// one goes via gw on link ifindex, alone or as a nexthop of a multipath
// route (via: the endpoint's own).
func HasDefaultRoute(netnsPath string, gw netip.Addr, ifindex int) (has, via bool, err error) {
	family, metric := unix.AF_INET, 0
	if gw.Is6() {
		family, metric = unix.AF_INET6, ip6DefaultMetric
	}
	err = inNetns(netnsPath, func(nl *netlink.Handle) error {
		routes, err := listRoutes(nl, family, &netlink.Route{}, 0)
		if err != nil {
			return fmt.Errorf("list routes in %s: %w", netnsPath, err)
		}
		for _, r := range routes {
			if !isDefault(r) || r.Priority != metric {
				continue
			}
			has = true
			via = via || (r.LinkIndex == ifindex && r.Gw.Equal(gw.AsSlice()))
			for _, nh := range r.MultiPath {
				via = via || (nh.LinkIndex == ifindex && nh.Gw.Equal(gw.AsSlice()))
			}
		}
		return nil
	}, false)
	return has, via, err
}

// HasDefaultRouteVia reports whether the namespace at netnsPath has a
// default route via gw on link ifindex in a routing table other than
// main (alone or as a nexthop): one a later plugin of a CNI chain moved
// out of the main table (sbr puts it in a table of its own) is still the
// endpoint's. The main table's is HasDefaultRoute's, with its metric.
func HasDefaultRouteVia(netnsPath string, gw netip.Addr, ifindex int) (via bool, err error) {
	family := unix.AF_INET
	if gw.Is6() {
		family = unix.AF_INET6
	}
	err = inNetns(netnsPath, func(nl *netlink.Handle) error {
		routes, err := listRoutes(nl, family, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("list routes in %s: %w", netnsPath, err)
		}
		for _, r := range routes {
			if !isDefault(r) || r.Table == unix.RT_TABLE_MAIN {
				continue
			}
			via = via || (r.LinkIndex == ifindex && r.Gw.Equal(gw.AsSlice()))
			for _, nh := range r.MultiPath {
				via = via || (nh.LinkIndex == ifindex && nh.Gw.Equal(gw.AsSlice()))
			}
		}
		return nil
	}, false)
	return via, err
}

// listRoutes is RouteListFiltered, a dump that a concurrent change
// interrupted tried again (a partial list would report a route missing).
func listRoutes(nl *netlink.Handle, family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	return retryDump(func() ([]netlink.Route, error) { return nl.RouteListFiltered(family, filter, mask) })
}

// ip6DefaultMetric is the metric the kernel gives an IPv6 route added
// without one (IP6_RT_PRIO_USER); an IPv4 one gets 0.
const ip6DefaultMetric = 1024

// isDefault says whether r is a default route (0.0.0.0/0, ::/0).
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}
