package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mvlan/mvlan/api"
)

// Schema is the version of the records this package writes; the file
// keeps it under the meta bucket's "schema" key. Schema 0 is what mvlan
// wrote before the file had a version: api.Network and api.Endpoint as
// JSON (see migrate.go).
//
// The records below are the on-disk format: their json tags are frozen.
// A change to them is a new schema with a migration, never an edit here.
// Schema 1 kept schema 0's field names, so the release before it can still
// read a file this one wrote. Schema 2 added an endpoint's CNI identity
// (cni, optional): schema 1 records are schema 2 records without it.
// Schema 3 added a network's IPAM driver (ipam_driver) and an endpoint's
// DHCP lease (lease), both optional: schema 2 records are schema 3 records
// of networks with the default IPAM driver. Schema 4 added where a
// network's name came from (name_from, optional: the operator's when
// absent); its migration marks the networks named by their own ID (Docker's
// networks created without -o name=) as named by Docker's ID.
// Schema 5 added an endpoint's DHCPv6 lease (lease6, optional). Schema 6
// added the gateways an endpoint has no default route through
// (unrouted_gateways, optional: none when absent).
const Schema = 6

// networkRecord is a stored network (schema 1).
type networkRecord struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	NameFrom   string            `json:"name_from,omitempty"` // schema 4
	Driver     string            `json:"driver"`
	Created    time.Time         `json:"created"`
	Parent     string            `json:"parent"`
	ParentKind string            `json:"parent_kind"`
	LinkKind   string            `json:"link_kind,omitempty"`
	Mode       string            `json:"macvlan_mode"`
	IPv6       bool              `json:"ipv6"`
	Internal   bool              `json:"internal"`
	Serial     bool              `json:"serial_allocation,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Options    map[string]string `json:"options,omitempty"`
	Pools      []poolRecord      `json:"pools"`
	DatapathID uint32            `json:"datapath_id"`
	IPAMDriver string            `json:"ipam_driver,omitempty"` // schema 3
}

// poolRecord is one subnet of a stored network (schema 1).
type poolRecord struct {
	Subnet  netip.Prefix          `json:"subnet"`
	Gateway netip.Addr            `json:"gateway"`
	IPRange netip.Prefix          `json:"ip_range,omitzero"`
	Aux     map[string]netip.Addr `json:"aux_addresses,omitempty"`
}

// endpointRecord is a stored endpoint (schema 2).
type endpointRecord struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	NetworkID   string         `json:"network_id"`
	Netns       string         `json:"netns"`
	NetnsInode  uint64         `json:"netns_inode"`
	OwnsNetns   bool           `json:"owns_netns"`
	IfName      string         `json:"ifname"`
	MAC         string         `json:"mac"`
	Addrs       []netip.Prefix `json:"addresses"`
	State       string         `json:"state"`
	Created     time.Time      `json:"created"`
	NetnsCookie uint64         `json:"netns_cookie,omitempty"`
	Ifindex     int            `json:"ifindex,omitempty"`
	CNI         *cniRecord     `json:"cni,omitempty"`               // schema 2
	Lease       *leaseRecord   `json:"lease,omitempty"`             // schema 3
	Lease6      *leaseRecord   `json:"lease6,omitempty"`            // schema 5
	Unrouted    []netip.Addr   `json:"unrouted_gateways,omitempty"` // schema 6
}

// leaseRecord is an endpoint's DHCP lease (schema 3).
type leaseRecord struct {
	State    string       `json:"state"`
	Server   netip.Addr   `json:"server"`
	Addr     netip.Prefix `json:"address"`
	Router   netip.Addr   `json:"router,omitzero"`
	DNS      []netip.Addr `json:"dns,omitempty"`
	Domain   string       `json:"domain,omitempty"`
	Search   []string     `json:"search,omitempty"`
	ClientID string       `json:"client_id"`
	Obtained time.Time    `json:"obtained"`
	Renew    time.Time    `json:"renew"`
	Rebind   time.Time    `json:"rebind"`
	Expiry   time.Time    `json:"expiry"`
	ACK      []byte       `json:"ack"`
	Error    string       `json:"error,omitempty"`
}

// cniRecord is the identity a CNI runtime gave an endpoint (schema 2).
type cniRecord struct {
	Network     string `json:"network"`
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
}

func networkToRecord(n api.Network) networkRecord {
	r := networkRecord{ID: n.ID, Name: n.Name, NameFrom: n.NameFrom, Driver: n.Driver, Created: n.Created, Parent: n.Parent,
		ParentKind: n.ParentKind, LinkKind: n.LinkKind, Mode: n.Mode, IPv6: n.IPv6, Internal: n.Internal,
		Serial: n.Serial, Labels: n.Labels, Options: n.Options, DatapathID: n.DatapathID, IPAMDriver: n.IPAMDriver}
	for _, p := range n.Pools {
		r.Pools = append(r.Pools, poolRecord(p))
	}
	return r
}

func (r networkRecord) api() api.Network {
	n := api.Network{ID: r.ID, Name: r.Name, NameFrom: r.NameFrom, Driver: r.Driver, Created: r.Created, Parent: r.Parent,
		ParentKind: r.ParentKind, LinkKind: r.LinkKind, Mode: r.Mode, IPv6: r.IPv6, Internal: r.Internal,
		Serial: r.Serial, Labels: r.Labels, Options: r.Options, DatapathID: r.DatapathID, IPAMDriver: r.IPAMDriver}
	for _, p := range r.Pools {
		n.Pools = append(n.Pools, api.Pool(p))
	}
	return n
}

func endpointToRecord(e api.Endpoint) endpointRecord {
	return endpointRecord{ID: e.ID, Name: e.Name, NetworkID: e.NetworkID, Netns: e.Netns, NetnsInode: e.NetnsInode,
		OwnsNetns: e.OwnsNetns, IfName: e.IfName, MAC: e.MAC, Addrs: e.Addrs, State: e.State, Created: e.Created,
		NetnsCookie: e.NetnsCookie, Ifindex: e.Ifindex, CNI: (*cniRecord)(e.CNI), Lease: (*leaseRecord)(e.Lease),
		Lease6: (*leaseRecord)(e.Lease6), Unrouted: e.Unrouted}
}

func (r endpointRecord) api() api.Endpoint {
	return api.Endpoint{ID: r.ID, Name: r.Name, NetworkID: r.NetworkID, Netns: r.Netns, NetnsInode: r.NetnsInode,
		OwnsNetns: r.OwnsNetns, IfName: r.IfName, MAC: r.MAC, Addrs: r.Addrs, State: r.State, Created: r.Created,
		NetnsCookie: r.NetnsCookie, Ifindex: r.Ifindex, CNI: (*api.CNIAttachment)(r.CNI), Lease: (*api.Lease)(r.Lease),
		Lease6: (*api.Lease)(r.Lease6), Unrouted: r.Unrouted}
}

// ErrBadRecord means a stored record does not decode or breaks the rules
// a record must keep; Open quarantines such records (see Quarantined).
var ErrBadRecord = errors.New("bad record")

// decodeNetwork decodes and checks a stored network whose key is key.
func decodeNetwork(key, data []byte) (networkRecord, error) {
	return decode("network", key, data, func(r *networkRecord) string {
		switch {
		case r.ID != string(key):
			return fmt.Sprintf("id %q under key %q", r.ID, key)
		case r.Name == "":
			return "no name"
		case r.Parent == "":
			return "no parent"
		case r.NameFrom != api.NameGiven && r.NameFrom != api.NameDockerID && r.NameFrom != api.NameDockerd:
			return fmt.Sprintf("name_from %q is none of %q, %q", r.NameFrom, api.NameDockerID, api.NameDockerd)
		}
		for _, p := range r.Pools {
			if !p.Subnet.IsValid() || !p.Gateway.IsValid() {
				return fmt.Sprintf("pool %v has no valid subnet or gateway", p.Subnet)
			}
		}
		return ""
	})
}

// decodeEndpoint decodes and checks a stored endpoint whose key is key.
func decodeEndpoint(key, data []byte) (endpointRecord, error) {
	return decode("endpoint", key, data, func(r *endpointRecord) string {
		switch {
		case r.ID != string(key):
			return fmt.Sprintf("id %q under key %q", r.ID, key)
		case r.Name == "":
			return "no name"
		case r.NetworkID == "":
			return "no network"
		}
		for _, a := range r.Addrs {
			if !a.IsValid() {
				return "invalid address"
			}
		}
		return ""
	})
}

// decode unmarshals a record and asks problem what is wrong with it.
func decode[R any](kind string, key, data []byte, problem func(*R) string) (R, error) {
	var r R
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s %s: %w: %v", kind, key, ErrBadRecord, err)
	}
	if p := problem(&r); p != "" {
		return r, fmt.Errorf("%s %s: %w: %s", kind, key, ErrBadRecord, p)
	}
	return r, nil
}
