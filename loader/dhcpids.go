package loader

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
)

// DHCPIDMax is the longest DHCP client identity the datapath holds for an
// endpoint (DHCP_ID_MAX).
const DHCPIDMax = 32

// dhcpIDs mirrors struct dhcp_ids: an endpoint's DHCP client identities,
// by its MAC in dhcp_ids.
type dhcpIDs struct {
	Len4, Len6 uint8
	Pad        [6]uint8
	ID4, ID6   [DHCPIDMax]byte
}

// newDHCPIDs is ep's dhcp_ids value; ok is false when it has none.
func newDHCPIDs(ep Endpoint) (v dhcpIDs, ok bool, err error) {
	for _, id := range []struct {
		name string
		b    []byte
	}{{"client identifier", ep.DHCPClientID}, {"DUID", ep.DHCPDUID}} {
		if len(id.b) > DHCPIDMax {
			return v, false, fmt.Errorf("endpoint %s: DHCP %s of %d bytes: want at most %d", ep.MAC, id.name, len(id.b), DHCPIDMax)
		}
	}
	v.Len4, v.Len6 = uint8(len(ep.DHCPClientID)), uint8(len(ep.DHCPDUID))
	copy(v.ID4[:], ep.DHCPClientID)
	copy(v.ID6[:], ep.DHCPDUID)
	return v, v.Len4 > 0 || v.Len6 > 0, nil
}

// setDHCPIDs puts the identities under mac (recorded in done when new),
// or deletes the entry of an endpoint that has none. Caller holds tables.
func (d *Datapath) setDHCPIDs(done []created, mac [6]byte, v dhcpIDs, ok bool) ([]created, error) {
	key := macKey{MAC: mac}
	if !ok {
		if err := deleteKey(d.maps.DhcpIds, &key); err != nil {
			return done, fmt.Errorf("delete endpoint DHCP identity: %w", err)
		}
		return done, nil
	}
	done, err := d.create(done, "dhcp_ids", &key, &v)
	if err != nil {
		return done, fmt.Errorf("set endpoint DHCP identity: %w", err)
	}
	return done, nil
}

// withDHCPIDs is ep with the identities held under its MAC (a row read
// back from ep_table, which does not carry them). Caller holds tables.
func (d *Datapath) withDHCPIDs(ep Endpoint, mac [6]byte) (Endpoint, error) {
	var v dhcpIDs
	err := d.maps.DhcpIds.Lookup(&macKey{MAC: mac}, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return ep, nil
	}
	if err != nil {
		return ep, fmt.Errorf("read endpoint DHCP identity: %w", err)
	}
	ep.DHCPClientID = append([]byte(nil), v.ID4[:min(v.Len4, DHCPIDMax)]...)
	ep.DHCPDUID = append([]byte(nil), v.ID6[:min(v.Len6, DHCPIDMax)]...)
	return ep, nil
}

// MACNetwork is the network id of the endpoint row that has mac (ok
// false: none): MACs are unique on the host, as ep_by_mac keys rows by
// MAC alone (and dhcp_ids their identities).
func (d *Datapath) MACNetwork(mac net.HardwareAddr) (id uint32, ok bool, err error) {
	key, err := mac6(mac)
	if err != nil {
		return 0, false, err
	}
	var info epInfo
	err = d.maps.EpByMac.Lookup(&macKey{MAC: key}, &info)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("look up endpoint mac %s: %w", mac, err)
	}
	return info.NetworkID, true, nil
}
