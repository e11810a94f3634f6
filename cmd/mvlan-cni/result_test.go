package main

import (
	"net/netip"
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestResult: an endpoint's result lists its interface in the sandbox,
// each address with its subnet's gateway, and a default route per family
// unless the network is internal.
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
	n.Internal = true
	if r := result(n, e); len(r.Routes) != 0 || len(r.IPs) != 2 {
		t.Errorf("internal network: routes %v ips %v; want no route, both addresses", r.Routes, r.IPs)
	}
}
