package engine

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestTrustLinks: what --recover takes of the addresses on the endpoint
// links it finds, which a container may have added to.
func TestTrustLinks(t *testing.T) {
	pfx := netip.MustParsePrefix
	pub := api.Network{ID: "pub", Pools: []api.Pool{{Subnet: pfx("172.16.86.0/24"), Gateway: netip.MustParseAddr("172.16.86.1")}}}
	other := api.Network{ID: "other", Pools: []api.Pool{{Subnet: pfx("10.2.0.0/24"), Gateway: netip.MustParseAddr("10.2.0.1")}}}
	dhcp := api.Network{ID: "dhcp", IPAMDriver: api.IPAMDHCP, Pools: []api.Pool{{Subnet: pfx("192.168.5.0/24"), Gateway: netip.MustParseAddr("192.168.5.1")}}}
	unlearned := api.Network{ID: "unlearned", IPAMDriver: api.IPAMDHCP}
	nets := []api.Network{pub, other, dhcp, unlearned}
	for _, tc := range []struct {
		what  string
		eps   []api.Endpoint // stored
		found map[string][]netip.Prefix
		want  map[string][]netip.Prefix
	}{
		{"stored: its own, whatever was added",
			[]api.Endpoint{{ID: "a", NetworkID: "pub", Addrs: []netip.Prefix{pfx("172.16.86.10/24")}}},
			map[string][]netip.Prefix{"a": {pfx("172.16.86.10/24"), pfx("172.16.86.1/32"), pfx("172.16.86.11/32")}},
			map[string][]netip.Prefix{"a": {pfx("172.16.86.10/24")}}},
		{"new: the first its network gives, per family",
			nil,
			map[string][]netip.Prefix{"n": {pfx("203.0.113.7/32"), pfx("172.16.86.1/32"), pfx("172.16.86.12/24"), pfx("10.2.0.5/24"), pfx("172.16.86.13/24")}},
			map[string][]netip.Prefix{"n": {pfx("172.16.86.12/24")}}},
		{"new: not a found stored endpoint's",
			[]api.Endpoint{{ID: "a", NetworkID: "pub", Addrs: []netip.Prefix{pfx("172.16.86.10/24")}}},
			map[string][]netip.Prefix{"a": {pfx("172.16.86.10/24")}, "n": {pfx("172.16.86.10/32"), pfx("172.16.86.12/24")}},
			map[string][]netip.Prefix{"a": {pfx("172.16.86.10/24")}, "n": {pfx("172.16.86.12/24")}}},
		// The container was removed and made again with its address after
		// the snapshot: the new one keeps it (and the old is forgotten).
		{"new: a gone stored endpoint's address",
			[]api.Endpoint{{ID: "old", NetworkID: "pub", Addrs: []netip.Prefix{pfx("172.16.86.10/24")}}},
			map[string][]netip.Prefix{"new": {pfx("172.16.86.10/24")}},
			map[string][]netip.Prefix{"new": {pfx("172.16.86.10/24")}}},
		{"dhcp: its link's, as its network would give",
			[]api.Endpoint{{ID: "d", NetworkID: "dhcp", Addrs: []netip.Prefix{pfx("192.168.5.40/24")}}},
			map[string][]netip.Prefix{"d": {pfx("192.168.5.1/32"), pfx("192.168.5.50/24"), pfx("192.168.5.51/24")}},
			map[string][]netip.Prefix{"d": {pfx("192.168.5.50/24")}}},
		{"dhcp without a subnet yet: the first per family",
			[]api.Endpoint{{ID: "u", NetworkID: "unlearned"}},
			map[string][]netip.Prefix{"u": {pfx("192.168.9.50/24"), pfx("192.168.9.51/24"), pfx("2001:db8::5/64")}},
			map[string][]netip.Prefix{"u": {pfx("192.168.9.50/24"), pfx("2001:db8::5/64")}}},
	} {
		found := map[string]kernelEndpoint{}
		for id, addrs := range tc.found {
			found[id] = kernelEndpoint{addrs: addrs}
		}
		trustLinks(found, tc.eps, nets)
		for id, want := range tc.want {
			if got := found[id].addrs; !slices.Equal(got, want) {
				t.Errorf("%s: %s keeps %v, want %v", tc.what, id, got, want)
			}
		}
	}
}
