package engine

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/netconf"
)

// dhcpNet is a DHCP network with --subnet 10.6.0.0/24 whose endpoint c1
// holds 10.6.0.100 by lease (not in the network's space).
func dhcpNet(t *testing.T) *network {
	t.Helper()
	sp, err := ipam.New([]ipam.PoolConfig{{Subnet: netip.MustParsePrefix("10.6.0.0/24")}}, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &network{ID: "d1ce", DHCP: true, space: sp}
	n.setName("dn", "")
	n.initIndex()
	n.add(endpoint{ID: "e1", Name: "c1", Addrs: []netip.Prefix{netip.MustParsePrefix("10.6.0.100/24")}}).busy.Unlock()
	return n
}

// TestShimOnDHCPNetwork: host_shim=auto is refused on a DHCP network
// (its server leases the subnet's addresses), naming the way out; an
// address a container holds by lease is refused naming the container and
// held nowhere; a free one is held; the DHCP client of an endpoint
// refuses the shim's address.
func TestShimOnDHCPNetwork(t *testing.T) {
	err := checkShimFor("dn", true, false, netconf.HostShim{Auto: true})
	if err == nil || !strings.Contains(err.Error(), "host_shim=IP") || !strings.Contains(err.Error(), "DHCP") {
		t.Fatalf("auto on a DHCP network: %v; want it refused, naming host_shim=IP", err)
	}
	if err := checkShimFor("dn", false, false, netconf.HostShim{Auto: true}); err != nil {
		t.Fatalf("auto on a local network: %v", err)
	}
	n := dhcpNet(t)
	leased := netip.MustParseAddr("10.6.0.100")
	_, err = n.reserveShim(netconf.HostShim{Addrs: []netip.Addr{leased}})
	if err == nil || !strings.Contains(err.Error(), "10.6.0.100 is the address of endpoint c1") {
		t.Fatalf("the shim on c1's leased address: %v; want it refused naming c1", err)
	}
	if _, held := n.space.Owner(leased); held {
		t.Fatal("the refused address is held")
	}
	free := netip.MustParseAddr("10.6.0.5")
	if got, err := n.reserveShim(netconf.HostShim{Addrs: []netip.Addr{free}}); err != nil || !slices.Equal(got, []netip.Addr{free}) {
		t.Fatalf("the shim on a free address: %v, %v", got, err)
	}
	n.shim = &shimState{addrs: []netip.Addr{free}}
	a := &Engine{}
	if l := a.dhcpLinkOf(n, endpoint{Name: "c2"}, false); l.Refuse(free) != "the address of the network's host shim" {
		t.Fatalf("the DHCP client takes the shim's %v: %q", free, l.Refuse(free))
	}
}

// TestShimAutoNoSubnet: auto on a network without a subnet (a DHCP one
// without --subnet) is an error, not a shim without addresses.
func TestShimAutoNoSubnet(t *testing.T) {
	sp, err := ipam.New(nil, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &network{ID: "d2", space: sp}
	n.setName("dn2", "")
	n.initIndex()
	if got, err := n.reserveShim(netconf.HostShim{Auto: true}); err == nil || !strings.Contains(err.Error(), "no subnet") {
		t.Fatalf("auto without a subnet: %v, %v; want an error", got, err)
	}
}

// TestShimUpdateCluster: network update cannot give a cluster network a
// host shim (not available there yet), as create cannot; off is no error.
func TestShimUpdateCluster(t *testing.T) {
	sp, err := ipam.New([]ipam.PoolConfig{{Subnet: netip.MustParsePrefix("10.7.0.0/24")}}, ipam.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &network{ID: "c1a55", Mode: "bridge", Options: map[string]string{scopeOption: api.ScopeCluster},
		Pools: []api.Pool{{Subnet: netip.MustParsePrefix("10.7.0.0/24")}}, space: sp, status: healthy()}
	n.setName("cn", "")
	n.initIndex()
	a := &Engine{nets: map[string]*network{n.ID: n}}
	for _, v := range []string{"auto", "10.7.0.5"} {
		_, err := a.UpdateNetwork(context.Background(), "cn", api.NetworkUpdate{Options: []string{"host_shim=" + v}})
		if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "not available on cluster networks") {
			t.Fatalf("update a cluster network to host_shim=%s: %v; want it refused (invalid)", v, err)
		}
	}
	if n.shim != nil {
		t.Fatalf("the refused update gave the network a shim: %+v", n.shim)
	}
	if _, err := a.UpdateNetwork(context.Background(), "cn", api.NetworkUpdate{Options: []string{"host_shim=off"}}); err != nil {
		t.Fatalf("off on a cluster network without a shim: %v", err)
	}
}
