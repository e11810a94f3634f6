package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetLeased puts addr (and a default route via router, when valid) on
// link ifindex of the namespace at netnsPath in place of old, for an
// endpoint whose address comes from a DHCP server. The link goes down and
// up around the change, so that arp_notify (set by AttachEndpoint when
// EndpointSpec.DHCP) announces the address with a gratuitous ARP. A zero
// addr takes old off (an expired lease) and leaves the link up. kept says
// the kernel refused the route via router (EEXIST): the namespace had an
// IPv4 default route of metric 0 already, which stays (another network's,
// or a pod's primary interface's).
func SetLeased(netnsPath string, ifindex int, old, addr netip.Prefix, router netip.Addr) (kept bool, err error) {
	err = inNetns(netnsPath, func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(ifindex)
		if err != nil {
			return fmt.Errorf("link %d in %s: %w", ifindex, netnsPath, err)
		}
		if old.IsValid() && old != addr {
			if err := nl.AddrDel(l, &netlink.Addr{IPNet: prefixIPNet(old)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("take %s off %s: %w", old, l.Attrs().Name, err)
			}
		}
		if !addr.IsValid() {
			return nil
		}
		if err := nl.LinkSetDown(l); err != nil {
			return fmt.Errorf("set %s down: %w", l.Attrs().Name, err)
		}
		if err := nl.AddrReplace(l, &netlink.Addr{IPNet: prefixIPNet(addr)}); err != nil {
			return errors.Join(fmt.Errorf("add address %s: %w", addr, err), nl.LinkSetUp(l))
		}
		if err := nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
		}
		if !router.IsValid() {
			return nil
		}
		err = nl.RouteAdd(&netlink.Route{LinkIndex: ifindex, Gw: net.IP(router.AsSlice())})
		kept = errors.Is(err, unix.EEXIST)
		if err != nil && !kept {
			return fmt.Errorf("add default route via %s: %w", router, err)
		}
		return nil
	}, false)
	return kept, err
}

// SetLeased6 puts the DHCPv6 address addr on link ifindex of the namespace
// at netnsPath in place of old (a zero addr only takes old off). The link
// stays up: with DHCP6 it does no DAD, so the address is usable at once and
// announced (ndisc_notify) as it is added.
func SetLeased6(netnsPath string, ifindex int, old, addr netip.Prefix) error {
	return inNetns(netnsPath, func(nl *netlink.Handle) error {
		l, err := nl.LinkByIndex(ifindex)
		if err != nil {
			return fmt.Errorf("link %d in %s: %w", ifindex, netnsPath, err)
		}
		if old.IsValid() && old != addr {
			if err := nl.AddrDel(l, &netlink.Addr{IPNet: prefixIPNet(old)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("take %s off %s: %w", old, l.Attrs().Name, err)
			}
		}
		if !addr.IsValid() {
			return nil
		}
		if err := nl.AddrReplace(l, &netlink.Addr{IPNet: prefixIPNet(addr)}); err != nil {
			return fmt.Errorf("add address %s to %s: %w", addr, l.Attrs().Name, err)
		}
		return nil
	}, false)
}
