package loader

import (
	"fmt"
	"net"
	"net/netip"
)

// Gateways are a network's gateway addresses and the host's own links on
// its parent: no frame leaving through the parent from another MAC than
// theirs may claim a gateway's address (ARP sender, NA target, IP source)
// toward the wire, where it would bind the gateway to that link. A link a
// container nests on the parent sends its kernel's ARP past every program
// of the container's.
type Gateways struct {
	ParentMAC net.HardwareAddr
	// HostLinks are the MACs of the links the host made on the parent (a
	// VM's macvtap, keepalived's VRRP macvlan), which may be the LAN's
	// router: at most MaxGatewayHostLinks.
	HostLinks []net.HardwareAddr
	Addrs     []netip.Addr // at most MaxGateways4 IPv4 and MaxGateways6 IPv6
}

// The most gateways of each family a network's entry holds (GW_MAX_V4,
// GW_MAX_V6), and the most host links besides the parent (GW_MAX_MACS).
const (
	MaxGateways4        = 4
	MaxGateways6        = 2
	MaxGatewayHostLinks = gatewayMACs - 1
	gatewayMACs         = 16
)

// gatewaysValue is struct gateways (bpf/include/mvlan.h).
type gatewaysValue struct {
	GW4           [MaxGateways4][4]byte
	GW6           [MaxGateways6][16]byte
	MACs          [gatewayMACs]uint64 // mac48
	N4, N6, NMACs uint8
	_             [5]byte
}

// SetGateways pins network networkID's gateways (parent_egress drops a
// claim of one from another link than the parent as arp_spoof or
// nd_spoof); with no addresses it pins none.
func (d *Datapath) SetGateways(networkID uint32, g Gateways) error {
	if err := checkNetworkID(networkID); err != nil {
		return err
	}
	v, err := gatewaysOf(g)
	if err != nil {
		return fmt.Errorf("gateways of network %d: %w", networkID, err)
	}
	if err := d.maps.Gateways.Put(&networkID, &v); err != nil {
		return fmt.Errorf("set gateways of network %d: %w", networkID, err)
	}
	return nil
}

func gatewaysOf(g Gateways) (gatewaysValue, error) {
	var v gatewaysValue
	if len(g.Addrs) == 0 {
		return v, nil
	}
	if len(g.HostLinks) > MaxGatewayHostLinks {
		return v, fmt.Errorf("host links %v: want at most %d besides the parent", g.HostLinks, MaxGatewayHostLinks)
	}
	what := "parent"
	for _, hw := range append([]net.HardwareAddr{g.ParentMAC}, g.HostLinks...) {
		mac, err := mac6(hw)
		if err != nil {
			return v, fmt.Errorf("%s %w", what, err)
		}
		v.MACs[v.NMACs], v.NMACs, what = mac48(mac), v.NMACs+1, "host link"
	}
	for _, a := range g.Addrs {
		a = a.WithZone("")
		switch {
		case !a.IsValid() || a.Is4In6():
			return v, fmt.Errorf("gateway %q: want an IPv4 or IPv6 address", a)
		case a.Is4() && v.N4 < MaxGateways4:
			v.GW4[v.N4], v.N4 = a.As4(), v.N4+1
		case a.Is6() && v.N6 < MaxGateways6:
			v.GW6[v.N6], v.N6 = a.As16(), v.N6+1
		default:
			return v, fmt.Errorf("gateway %s: want at most %d IPv4 and %d IPv6 addresses, got %v", a, MaxGateways4, MaxGateways6, g.Addrs)
		}
	}
	return v, nil
}
