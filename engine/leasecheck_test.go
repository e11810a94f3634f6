package engine

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/dhcp"
)

// TestLeaseRefuse: what a DHCP server on the wire may not give endpoint
// c2: the router of another endpoint's lease, an aux, the network or
// broadcast address, the host shim's, the host's on the parent, another
// endpoint's on this network or another; its own, a free one, the pool's
// gateway (on a DHCP network maybe no more than its --subnet's first
// address) and one an expired lease left in a record it may.
func TestLeaseRefuse(t *testing.T) {
	a := &Engine{nets: map[string]*network{}, host: addrsOnly{addrs: map[string][]netip.Addr{"eth0": {netip.MustParseAddr("10.6.0.5")}}}}
	n := dhcpNet(t) // c1 holds 10.6.0.100
	n.Parent = "eth0"
	n.Pools = []api.Pool{{Subnet: netip.MustParsePrefix("10.6.0.0/24"), Gateway: netip.MustParseAddr("10.6.0.1"),
		Aux: map[string]netip.Addr{"printer": netip.MustParseAddr("10.6.0.9")}}}
	n.shim = &shimState{addrs: []netip.Addr{netip.MustParseAddr("10.6.0.2")}}
	other := dhcpNet(t) // another DHCP network of the same subnet
	other.ID = "0e1"
	other.eps, other.byAddr = nil, nil
	other.initIndex()
	other.add(endpoint{ID: "e3", Name: "c3", Addrs: []netip.Prefix{netip.MustParsePrefix("10.6.0.101/24")}}).busy.Unlock()
	a.nets[n.ID], a.nets[other.ID] = n, other
	c2 := endpoint{ID: "e2", Name: "c2", Addrs: []netip.Prefix{netip.MustParsePrefix("10.6.0.50/24")}}
	n.add(c2).busy.Unlock()
	n.add(endpoint{ID: "e4", Name: "c4", Addrs: []netip.Prefix{netip.MustParsePrefix("10.6.0.60/24")},
		Lease: &dhcp.Lease{Addr: netip.MustParsePrefix("10.6.0.60/24"), Router: netip.MustParseAddr("10.6.0.254")}}).busy.Unlock()
	n.add(endpoint{ID: "e5", Name: "c5", Addrs: []netip.Prefix{netip.MustParsePrefix("10.6.0.70/24")},
		Lease: &dhcp.Lease{Addr: netip.MustParsePrefix("10.6.0.70/24"), State: dhcp.Expired}}).busy.Unlock()
	refuse := a.leaseRefuse(n, c2)
	for _, tc := range []struct{ addr, want string }{
		{"10.6.0.254", "router of endpoint c4's lease"},
		{"10.6.0.1", ""}, // the pool's gateway, not the leases' router
		{"10.6.0.9", "auxiliary"},
		{"10.6.0.0", "network address"},
		{"10.6.0.255", "broadcast address"},
		{"10.6.0.2", "host shim"},
		{"10.6.0.5", "this host on eth0"},
		{"10.6.0.100", "endpoint c1"},
		{"10.6.0.101", "endpoint c3"},
		{"10.6.0.50", ""}, // its own
		{"10.6.0.70", ""}, // c5's expired lease's
		{"10.6.0.77", ""},
	} {
		got := refuse(netip.MustParseAddr(tc.addr))
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("lease of %s: refused as %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// addrsOnly is a Host with only the addresses of its links.
type addrsOnly struct {
	Host
	addrs map[string][]netip.Addr
}

func (h addrsOnly) Addrs(name string) ([]netip.Addr, error) { return h.addrs[name], nil }

// TestLearnSubnetSize: a first lease whose mask makes no network (a /32,
// a /1) teaches the network no subnet: later offers would all be outside
// a /32, and a /1 would take half of IPv4 from every other network.
func TestLearnSubnetSize(t *testing.T) {
	for _, addr := range []string{"192.168.60.10/32", "192.168.60.10/1"} {
		n := dhcpNet(t)
		n.Pools = nil
		a := &Engine{nets: map[string]*network{n.ID: n}, log: slog.New(slog.DiscardHandler)}
		a.learnSubnet(n, dhcp.Lease{Addr: netip.MustParsePrefix(addr), Router: netip.MustParseAddr("192.168.60.1")})
		if _, ok := n.pool4(); ok {
			t.Errorf("lease %s: learned %v; want no subnet", addr, n.Pools)
		}
	}
}
