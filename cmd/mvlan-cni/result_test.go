package main

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/mvlan/mvlan/api"
)

// TestResult: an endpoint's result lists its interface in the sandbox,
// each address with its subnet's gateway, and a default route per family
// unless the network is internal or the namespace kept its own.
func TestResult(t *testing.T) {
	n := api.Network{Pools: []api.Pool{
		{Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Subnet: netip.MustParsePrefix("fd00:1::/64"), Gateway: netip.MustParseAddr("fd00:1::1")},
	}}
	e := api.Endpoint{IfName: "net1", MAC: "02:00:00:00:00:01", Netns: "/run/netns/x",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24"), netip.MustParsePrefix("fd00:1::5/64")}}
	r := result(n, e)
	if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "net1" || r.Interfaces[0].Sandbox != "/run/netns/x" || r.Interfaces[0].Mac != e.MAC {
		t.Errorf("interfaces %v", r.Interfaces)
	}
	want := []string{"10.1.0.5/24 via 10.1.0.1", "fd00:1::5/64 via fd00:1::1"}
	for i, ip := range r.IPs {
		if got := ip.Address.String() + " via " + ip.Gateway.String(); i >= len(want) || got != want[i] || *ip.Interface != 0 {
			t.Errorf("ips[%d] = %s (interface %d); want %s", i, got, *ip.Interface, want[i])
		}
	}
	if len(r.Routes) != 2 || r.Routes[0].Dst.String() != "0.0.0.0/0" || r.Routes[1].Dst.String() != "::/0" || r.Routes[1].GW.String() != "fd00:1::1" {
		t.Errorf("routes %v; want default via each gateway", r.Routes)
	}
	e.Unrouted = []netip.Addr{netip.MustParseAddr("10.1.0.1")}
	if r := result(n, e); len(r.Routes) != 1 || r.Routes[0].GW.String() != "fd00:1::1" || len(r.IPs) != 2 || r.IPs[0].Gateway.String() != "10.1.0.1" {
		t.Errorf("IPv4 gateway unrouted: routes %v ips %v; want the IPv6 default route only, both addresses with their gateway", r.Routes, r.IPs)
	}
	e.Unrouted = nil
	n.Internal = true
	if r := result(n, e); len(r.Routes) != 0 || len(r.IPs) != 2 {
		t.Errorf("internal network: routes %v ips %v; want no route, both addresses", r.Routes, r.IPs)
	}
}

// TestResultDHCP: on a DHCP network a leased address has its lease's
// router as gateway and default route (none once expired), an IPv6 one
// none (DHCPv6 gives no router; the pool's inferred gateway is not
// installed); the DNS servers are both leases', the domain and search
// list the DHCPv4 lease's.
func TestResultDHCP(t *testing.T) {
	v4, v6 := netip.MustParsePrefix("192.168.60.120/24"), netip.MustParsePrefix("fd00:60::20/128")
	n := api.Network{IPAMDriver: api.IPAMDHCP, IPv6: true, Pools: []api.Pool{
		{Subnet: netip.MustParsePrefix("fd00:60::/64"), Gateway: netip.MustParseAddr("fd00:60::1")},
		{Subnet: netip.MustParsePrefix("192.168.60.0/24"), Gateway: netip.MustParseAddr("192.168.60.1")}}}
	e := api.Endpoint{IfName: "eth0", Addrs: []netip.Prefix{v4, v6},
		Lease: &api.Lease{Addr: v4, Router: netip.MustParseAddr("192.168.60.1"), DNS: []netip.Addr{netip.MustParseAddr("192.168.60.53")},
			Domain: "lan.example", Search: []string{"a.example"}},
		Lease6: &api.Lease{Addr: v6, DNS: []netip.Addr{netip.MustParseAddr("fd00:60::53")}, Search: []string{"b.example"}}}
	r := result(n, e)
	if len(r.IPs) != 2 || r.IPs[0].Gateway.String() != "192.168.60.1" || r.IPs[1].Gateway != nil {
		t.Errorf("ips %v; want the IPv4 address with the lease's router, the IPv6 one without gateway", r.IPs)
	}
	if len(r.Routes) != 1 || r.Routes[0].GW.String() != "192.168.60.1" {
		t.Errorf("routes %v; want default via 192.168.60.1 only", r.Routes)
	}
	if d := r.DNS; strings.Join(d.Nameservers, " ") != "192.168.60.53 fd00:60::53" || d.Domain != "lan.example" ||
		strings.Join(d.Search, " ") != "a.example" {
		t.Errorf("dns %+v; want both servers, the DHCPv4 lease's domain and search list", d)
	}
	expired := *e.Lease
	expired.State = api.LeaseExpired
	e.Lease = &expired
	if r := result(n, e); len(r.IPs) != 2 || r.IPs[0].Gateway != nil || len(r.Routes) != 0 {
		t.Errorf("expired lease: ips %v routes %v; want no gateway, no route", r.IPs, r.Routes)
	}
	if d := result(n, api.Endpoint{Lease6: e.Lease6}).DNS; d.Domain != "" || strings.Join(d.Search, " ") != "b.example" {
		t.Errorf("DHCPv6 lease alone: dns %+v; want its search list", d)
	}
	if d := result(n, api.Endpoint{}).DNS; len(d.Nameservers)+len(d.Search) != 0 || d.Domain != "" {
		t.Errorf("no lease: dns %+v; want none", d)
	}
}

// TestWithPrev: given the result of the plugins before it in a chain,
// ADD answers theirs with its own interface, addresses (their interface
// index moved past the others') and routes after; a prevResult with a
// null entry is a decoding failure, not a crash, in ADD and in CHECK.
func TestWithPrev(t *testing.T) {
	n := api.Network{Pools: []api.Pool{{Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}}}
	e := api.Endpoint{IfName: "net1", MAC: "02:00:00:00:00:01", Netns: "/run/netns/x", Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24")}}
	if r, err := withPrev(nil, result(n, e)); err != nil || len(r.Interfaces) != 1 || *r.IPs[0].Interface != 0 {
		t.Fatalf("no prevResult: %v, %+v; want mvlan's result alone", err, r)
	}
	_, host, _ := net.ParseCIDR("192.168.9.2/24")
	prev := &current.Result{CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{{Name: "eth0", Sandbox: "/run/netns/x"}, {Name: "veth1"}},
		IPs:        []*current.IPConfig{{Interface: current.Int(0), Address: *host}},
		DNS:        types.DNS{Nameservers: []string{"192.168.9.1"}}}
	r, err := withPrev(prev, result(n, e))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 3 || r.Interfaces[2].Name != "net1" || len(r.IPs) != 2 || *r.IPs[0].Interface != 0 ||
		r.IPs[1].Address.String() != "10.1.0.5/24" || *r.IPs[1].Interface != 2 || len(r.Routes) != 1 || len(r.DNS.Nameservers) != 1 {
		t.Errorf("merged result %+v; want eth0, veth1, net1 with 10.1.0.5/24 on interface 2, one route, the DNS kept", r)
	}
	leased := e
	leased.Lease = &api.Lease{Addr: e.Addrs[0], DNS: []netip.Addr{netip.MustParseAddr("10.1.0.53")}}
	if r, err := withPrev(prev, result(n, leased)); err != nil || strings.Join(r.DNS.Nameservers, " ") != "192.168.9.1" {
		t.Errorf("merged result of a leased endpoint: %v, dns %+v; want the earlier plugins' DNS", err, r.DNS)
	}
	prev.DNS = types.DNS{}
	if r, err := withPrev(prev, result(n, leased)); err != nil || strings.Join(r.DNS.Nameservers, " ") != "10.1.0.53" {
		t.Errorf("merged result of a leased endpoint, none before: %v, dns %+v; want the lease's DNS", err, r.DNS)
	}
	// CHECK: mvlan's address by its interface's index; one a later plugin
	// added without an index is not mvlan's, unless none is indexed.
	other := &net.IPNet{IP: net.ParseIP("192.168.7.7").To4(), Mask: net.CIDRMask(24, 32)}
	ours := &net.IPNet{IP: net.ParseIP("10.1.0.5").To4(), Mask: net.CIDRMask(24, 32)}
	checked := &current.Result{CNIVersion: "1.0.0", Interfaces: []*current.Interface{{Name: "net1", Sandbox: "/run/netns/x", Mac: e.MAC}},
		IPs: []*current.IPConfig{{Interface: current.Int(0), Address: *ours}, {Address: *other}}}
	if err := compare(checked, e); err != nil {
		t.Errorf("CHECK with another plugin's address without an index: %v; want no drift", err)
	}
	checked.IPs[0].Interface = nil
	if err := compare(checked, e); cniCode(err) != errDrift {
		t.Errorf("CHECK with no address indexed, one not mvlan's: %v; want code %d", err, errDrift)
	}
	checked.IPs = checked.IPs[:1]
	if err := compare(checked, e); err != nil {
		t.Errorf("CHECK with mvlan's address not indexed: %v; want no drift", err)
	}
	for _, bad := range []*current.Result{
		{CNIVersion: "1.0.0", Interfaces: []*current.Interface{nil}},
		{CNIVersion: "1.0.0", IPs: []*current.IPConfig{nil}},
	} {
		if _, err := withPrev(bad, result(n, e)); cniCode(err) != types.ErrDecodingFailure {
			t.Errorf("ADD with prevResult %+v: %v; want code %d", bad, err, types.ErrDecodingFailure)
		}
		if err := compare(bad, e); cniCode(err) != types.ErrDecodingFailure {
			t.Errorf("CHECK with prevResult %+v: %v; want code %d", bad, err, types.ErrDecodingFailure)
		}
	}
}

// TestRoutedIn: CHECK looks for the default routes the final result lists
// (none listed: none looked for), all of them without a result.
func TestRoutedIn(t *testing.T) {
	if got, err := routedIn(nil); got != nil || err != nil {
		t.Errorf("routedIn(nil) = %v, %v; want nil (all)", got, err)
	}
	for _, c := range []struct {
		name   string
		routes []*types.Route
		want   []netip.Addr
	}{
		{"none", nil, []netip.Addr{}},
		{"defaults", []*types.Route{
			{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: net.ParseIP("10.1.0.1")},
			{Dst: net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}, GW: net.ParseIP("fd00:1::1")},
		}, []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("fd00:1::1")}},
		{"not default, no gateway", []*types.Route{
			{Dst: net.IPNet{IP: net.ParseIP("10.9.0.0").To4(), Mask: net.CIDRMask(16, 32)}, GW: net.ParseIP("10.1.0.1")},
			{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}},
		}, []netip.Addr{}},
	} {
		got, err := routedIn(&current.Result{CNIVersion: "1.1.0", Routes: c.routes})
		if err != nil || got == nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: routedIn = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
