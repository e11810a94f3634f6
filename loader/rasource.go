package loader

import (
	"fmt"
	"net"
	"net/netip"
)

// RASource is where router advertisements for a network's endpoints must
// come from (ra_sources): the router's link-local address, its MAC, or
// both; a zero RASource is none (ipv6_ra=ignore): no RA reaches them.
type RASource struct {
	LL  netip.Addr       // the RA's IPv6 source, a link-local address
	MAC net.HardwareAddr // the RA's Ethernet source
}

// raSource is struct ra_source (bpf/include/mvlan.h).
type raSource struct {
	LL    [16]byte
	MAC   [6]byte
	Flags uint8
	Pad   uint8
}

const (
	raSrcLL  = 0x1 // RA_SRC_LL
	raSrcMAC = 0x2 // RA_SRC_MAC
)

// SetRASource makes ep_ingress drop, as ra_source, every router
// advertisement or redirect from the wire for network networkID's
// endpoints that does not come from src; with a zero src, the network's
// (and a network's that was never set), it drops every one, as
// ra_ignore. (A local endpoint's are ra_guard's, EP_ALLOW_ROUTER.)
func (d *Datapath) SetRASource(networkID uint32, src RASource) error {
	if err := checkNetworkID(networkID); err != nil {
		return err
	}
	var v raSource
	if src.LL.IsValid() {
		if !src.LL.Is6() || !src.LL.IsLinkLocalUnicast() {
			return fmt.Errorf("RA source %s: want an IPv6 link-local address (fe80::/10)", src.LL)
		}
		v.LL, v.Flags = src.LL.WithZone("").As16(), v.Flags|raSrcLL
	}
	if src.MAC != nil {
		mac, err := mac6(src.MAC)
		if err != nil || mac[0]&1 != 0 {
			return fmt.Errorf("RA source MAC %q: want a unicast Ethernet address", src.MAC)
		}
		v.MAC, v.Flags = mac, v.Flags|raSrcMAC
	}
	if err := d.maps.RaSources.Put(&networkID, &v); err != nil {
		return fmt.Errorf("set RA source of network %d: %w", networkID, err)
	}
	return nil
}
