package loader

// The rows of the endpoint tables in their map encoding: an endpoint's
// record (epInfo) from an Endpoint, address keys, EUI-64 link-locals.

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

func newEpInfo(ep Endpoint) (epInfo, error) {
	var info epInfo
	mac, err := mac6(ep.MAC)
	if err != nil {
		return info, err
	}
	if ep.Ifindex <= 0 {
		return info, fmt.Errorf("endpoint ifindex %d: want a positive ifindex", ep.Ifindex)
	}
	if err := checkNetworkID(ep.NetworkID); err != nil {
		return info, err
	}
	if ep.Allow&^allowMask != 0 {
		return info, fmt.Errorf("endpoint %s: unknown allow flags %#x", ep.MAC, uint32(ep.Allow))
	}
	info.MAC, info.NetworkID, info.Flags = mac, ep.NetworkID, ep.Allow|epDHCPIDs
	if ep.Moving {
		info.Flags |= epMoving
	}
	if ep.HostShim {
		info.Flags |= epHostShim
	}
	if ep.Probing {
		info.Flags |= epProbing
	}
	info.NetnsCookie, info.Ifindex = ep.NetnsCookie, uint32(ep.Ifindex)
	seen := map[netip.Addr]bool{}
	for _, ip := range append(slices.Clone(ep.IPs), linkLocal(mac)) {
		ip = ip.Unmap().WithZone("")
		switch {
		case seen[ip]:
		case ip.Is4() && info.N4 < maxV4:
			info.IP4[info.N4] = ip.As4()
			info.N4++
		case ip.Is6() && info.N6 < maxV6:
			info.IP6[info.N6] = ip.As16()
			info.N6++
		default:
			return info, fmt.Errorf("endpoint %s: too many addresses: at most %d IPv4 and %d IPv6 (the link-local included)", ep.MAC, maxV4, maxV6)
		}
		seen[ip] = true
	}
	return info, nil
}

// addrs are the endpoint's addresses, the link-local included.
func (e epInfo) addrs() []netip.Addr {
	var out []netip.Addr
	for i := range e.N4 {
		out = append(out, netip.AddrFrom4(e.IP4[i]))
	}
	for i := range e.N6 {
		out = append(out, netip.AddrFrom16(e.IP6[i]))
	}
	return out
}

func checkNetworkID(id uint32) error {
	if id == 0 || id >= maxNetworks {
		return fmt.Errorf("network id %d: want 1-%d", id, maxNetworks-1)
	}
	return nil
}

func mac6(hw net.HardwareAddr) ([6]byte, error) {
	var mac [6]byte
	if len(hw) != 6 {
		return mac, fmt.Errorf("mac %q: want a 6-byte Ethernet address", hw)
	}
	copy(mac[:], hw)
	return mac, nil
}

func newIPKey(ip netip.Addr) ipKey {
	ip = ip.Unmap().WithZone("")
	k := ipKey{Family: familyV6}
	if ip.Is4() {
		k.Family = familyV4
		a := ip.As4()
		copy(k.Addr[:], a[:])
	} else {
		k.Addr = ip.As16()
	}
	return k
}

func (k ipKey) addr() netip.Addr {
	if k.Family == familyV4 {
		return netip.AddrFrom4([4]byte(k.Addr[:4]))
	}
	return netip.AddrFrom16(k.Addr)
}

// linkLocal is the EUI-64 link-local IPv6 address of mac (fe80::/64).
func linkLocal(mac [6]byte) netip.Addr {
	a := [16]byte{0: 0xfe, 1: 0x80}
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}
