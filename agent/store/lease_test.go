package store

import (
	"net/netip"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
)

// TestLeaseKept: a network's IPAM driver and an endpoint's DHCP leases
// (schema 3; its DHCPv6 lease: schema 5) and unrouted gateways (schema
// 6) are read back, every field, after the file is closed and opened
// again; an endpoint without them stays without.
func TestLeaseKept(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := api.Network{ID: NewID(), Name: "lan", Parent: "eth0", ParentKind: api.ParentExisting, IPAMDriver: api.IPAMDHCP}
	now := time.Now().UTC().Round(0)
	l := &api.Lease{State: api.LeaseRenewing, Server: netip.MustParseAddr("192.0.2.1"),
		Addr: netip.MustParsePrefix("192.0.2.100/24"), Router: netip.MustParseAddr("192.0.2.1"),
		DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}, ClientID: "ff00aa", Obtained: now,
		Renew: now.Add(time.Minute), Rebind: now.Add(2 * time.Minute), Expiry: now.Add(3 * time.Minute),
		ACK: []byte{2, 1, 6, 0}, Error: "no answer"}
	l6 := &api.Lease{State: api.LeaseBound, Addr: netip.MustParsePrefix("fd00:60::10/64"), ClientID: "0004aa",
		Obtained: now, Renew: now.Add(time.Minute), Rebind: now.Add(2 * time.Minute), Expiry: now.Add(3 * time.Minute),
		ACK: []byte{7, 1, 2, 3}}
	unrouted := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	with := api.Endpoint{ID: NewID(), Name: "c1", NetworkID: n.ID, Lease: l, Lease6: l6, Unrouted: unrouted}
	without := api.Endpoint{ID: NewID(), Name: "c2", NetworkID: n.ID}
	for _, err := range []error{s.CreateNetwork(n), s.CreateEndpoint(with), s.CreateEndpoint(without), s.Close()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Networks(); err != nil || len(got) != 1 || got[0].IPAMDriver != api.IPAMDHCP {
		t.Errorf("networks read back as %+v (%v), want one with IPAM driver dhcp", got, err)
	}
	got, err := s.Endpoint(with.ID)
	if err != nil || got.Lease == nil || !reflect.DeepEqual(*got.Lease, *l) {
		t.Errorf("lease read back as %+v (%v);\nwant %+v", got.Lease, err, l)
	}
	if got.Lease6 == nil || !reflect.DeepEqual(*got.Lease6, *l6) {
		t.Errorf("DHCPv6 lease read back as %+v;\nwant %+v", got.Lease6, l6)
	}
	if !reflect.DeepEqual(got.Unrouted, unrouted) {
		t.Errorf("unrouted gateways read back as %v; want %v", got.Unrouted, unrouted)
	}
	if got, err := s.Endpoint(without.ID); err != nil || got.Lease != nil || got.Lease6 != nil || got.Unrouted != nil {
		t.Errorf("endpoint without a lease read back with %+v, unrouted %v (%v)", got.Lease, got.Unrouted, err)
	}
}

// TestMigrateSchema2: a schema 2 file (records without ipam_driver and
// lease) opens as the current schema with every record as it was.
func TestMigrateSchema2(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := api.Network{ID: NewID(), Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting,
		Pools: []api.Pool{{Subnet: netip.MustParsePrefix("172.16.86.0/24"), Gateway: netip.MustParseAddr("172.16.86.1")}}}
	ep := api.Endpoint{ID: NewID(), Name: "c1", NetworkID: n.ID, Addrs: []netip.Prefix{netip.MustParsePrefix("172.16.86.2/24")},
		CNI: &api.CNIAttachment{Network: "mvnet", ContainerID: "c0ffee", IfName: "net1"}}
	for _, err := range []error{s.CreateNetwork(n), s.CreateEndpoint(ep), s.Close()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	setInFile(t, dir, bMeta, kSchema, []byte("2"))
	if s, err = Open(dir); err != nil {
		t.Fatalf("open a schema 2 file: %v", err)
	}
	gotN, err1 := s.Networks()
	gotE, err2 := s.Endpoint(ep.ID)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := schemaIn(t, dir); got != strconv.Itoa(Schema) || Schema < 3 {
		t.Errorf("schema after open %q (Schema %d), want at least 3", got, Schema)
	}
	if err1 != nil || err2 != nil || !reflect.DeepEqual(gotN, []api.Network{n}) || !reflect.DeepEqual(gotE, ep) {
		t.Errorf("records after migration (%v, %v):\n%+v\n%+v\nwant\n%+v\n%+v", err1, err2, gotN, gotE, n, ep)
	}
}
