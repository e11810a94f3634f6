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
		addrs, err := nl.AddrList(l, unix.AF_UNSPEC)
		if err != nil {
			return fmt.Errorf("list addresses of %s in %s: %w", l.Attrs().Name, netnsPath, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || ip.Unmap().IsLinkLocalUnicast() {
				continue
			}
			ones, _ := a.Mask.Size()
			out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
		}
		return nil
	}, false)
	return out, err
}

// HasDefaultRoute reports whether the namespace at netnsPath has a default
// route of the family of gw (IPv6 if gw is), whatever its gateway (has: a
// namespace that had one before an endpoint joined keeps it), and whether
// one goes via gw on link ifindex (via: the endpoint's own).
func HasDefaultRoute(netnsPath string, gw netip.Addr, ifindex int) (has, via bool, err error) {
	family := unix.AF_INET
	if gw.Is6() {
		family = unix.AF_INET6
	}
	err = inNetns(netnsPath, func(nl *netlink.Handle) error {
		routes, err := nl.RouteList(nil, family)
		if err != nil {
			return fmt.Errorf("list routes in %s: %w", netnsPath, err)
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			has = true
			if r.LinkIndex == ifindex && r.Gw.Equal(gw.AsSlice()) {
				via = true
			}
		}
		return nil
	}, false)
	return has, via, err
}
