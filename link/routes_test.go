package link_test

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestHasDefaultRoute: in a namespace with links a and b, has is a main
// table default route of gw's family with the kernel's metric for routes
// added without one (IPv4 0, IPv6 1024), whatever its gateway; via is one
// through gw on a, also as a nexthop of an IPv6 multipath route (siblings
// of one metric are one route).
func TestHasDefaultRoute(t *testing.T) {
	tests := []struct {
		name     string
		routes   []string // `ip` arguments
		gw       string   // asked about, on link a
		has, via bool
	}{
		{name: "none", gw: "10.1.0.1"},
		{name: "v4 own", routes: []string{"route add default via 10.1.0.1 dev a"}, gw: "10.1.0.1", has: true, via: true},
		{name: "v4 another's", routes: []string{"route add default via 10.2.0.1 dev b"}, gw: "10.1.0.1", has: true},
		{name: "v4 own gateway on b", routes: []string{"route add default via 10.1.0.1 dev b onlink"}, gw: "10.1.0.1", has: true},
		{name: "v4 another's of metric 100", routes: []string{"route add default via 10.2.0.1 dev b metric 100"}, gw: "10.1.0.1"},
		{name: "v4 asked about v6", routes: []string{"route add default via 10.1.0.1 dev a"}, gw: "fd01::1"},
		{name: "v6 own", routes: []string{"-6 route add default via fd01::1 dev a"}, gw: "fd01::1", has: true, via: true},
		{name: "v6 multipath", routes: []string{"-6 route add default via fd02::1 dev b", "-6 route append default via fd01::1 dev a"},
			gw: "fd01::1", has: true, via: true},
		{name: "v6 another's", routes: []string{"-6 route add default via fd02::1 dev b"}, gw: "fd01::1", has: true},
		{name: "v6 another's of metric 100", routes: []string{"-6 route add default via fd02::1 dev b metric 100"}, gw: "fd01::1"},
	}
	sb := nstest.NewSandbox(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := sb.Netns(t, "r"+strconv.Itoa(i))
			for _, cmd := range []string{
				"link add name a type veth peer name a-peer", "link add name b type veth peer name b-peer",
				"link set dev a-peer up", "link set dev b-peer up", "link set dev a up", "link set dev b up",
				"addr add 10.1.0.2/24 dev a", "addr add 10.2.0.2/24 dev b",
				"addr add fd01::2/64 dev a nodad", "addr add fd02::2/64 dev b nodad",
			} {
				sb.Run(t, ns, append([]string{"ip"}, strings.Fields(cmd)...)...)
			}
			for _, cmd := range tt.routes {
				sb.Run(t, ns, append([]string{"ip"}, strings.Fields(cmd)...)...)
			}
			idx, err := strconv.Atoi(strings.SplitN(sb.Run(t, ns, "ip", "-o", "link", "show", "dev", "a"), ":", 2)[0])
			if err != nil {
				t.Fatal(err)
			}
			has, via, err := link.HasDefaultRoute(ns, netip.MustParseAddr(tt.gw), idx)
			if err != nil || has != tt.has || via != tt.via {
				t.Errorf("HasDefaultRoute(%s on a) = has %v, via %v, %v; want %v, %v\nroutes:\n%s%s", tt.gw, has, via, err, tt.has, tt.via,
					sb.Run(t, ns, "ip", "route"), sb.Run(t, ns, "ip", "-6", "route"))
			}
		})
	}
}
