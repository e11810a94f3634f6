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
