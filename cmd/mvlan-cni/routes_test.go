package main

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestCNIKeptDefaultRoute: a Multus secondary network. The pod's
// namespace has its primary interface and default route already; mvlan's
// net1 leaves that route alone, and the ADD result (what Multus puts in
// the pod's network-status, and takes a default route from) lists no
// default route of mvlan's, also when the ADD is repeated after an agent
// restart; CHECK passes; the endpoint shows the gateway as unrouted. A
// pod without a default route gets mvlan's, and its result says so.
func TestCNIKeptDefaultRoute(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	pod := e.container("pod")
	pod.IfName = "net1"
	for _, args := range [][]string{
		{"link", "add", "prim", "type", "veth", "peer", "name", "prim-peer"},
		{"addr", "add", "192.168.50.2/24", "dev", "prim"},
		{"link", "set", "prim-peer", "up"},
		{"link", "set", "prim", "up"},
		{"route", "add", "default", "via", "192.168.50.1"},
	} {
		e.sb.Run(t, pod.NetNS, append([]string{"ip"}, args...)...)
	}
	r := e.add(l, pod)
	if len(r.IPs) != 1 || r.IPs[0].Gateway.String() != "172.16.86.1" || len(r.Routes) != 0 {
		t.Errorf("ADD beside a default route: ips %v routes %v; want one address with gateway 172.16.86.1, no route", r.IPs, r.Routes)
	}
	defaultVia(t, pod.NetNS, "default via 192.168.50.1 dev prim")
	ep := e.endpoint(e.sb.Name + "-pod")
	if want := []netip.Addr{netip.MustParseAddr("172.16.86.1")}; !slices.Equal(ep.Unrouted, want) {
		t.Errorf("endpoint's unrouted gateways %v; want %v", ep.Unrouted, want)
	}
	if err := e.cni.CheckNetworkList(context.Background(), l, pod); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	e.a.Stop()
	e.a.Start()
	if r := e.add(l, pod); len(r.Routes) != 0 || len(r.IPs) != 1 {
		t.Errorf("repeated ADD after a restart: ips %v routes %v; want the first result, no route", r.IPs, r.Routes)
	}

	plain := e.container("plain")
	r = e.add(l, plain)
	if len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" || r.Routes[0].GW.String() != "172.16.86.1" {
		t.Errorf("ADD to a namespace without a default route: routes %v; want default via 172.16.86.1", r.Routes)
	}
	defaultVia(t, plain.NetNS, "default via 172.16.86.1 dev eth0")
	if ep := e.endpoint(e.sb.Name + "-plain"); len(ep.Unrouted) != 0 {
		t.Errorf("endpoint with its default route: unrouted gateways %v; want none", ep.Unrouted)
	}
	e.del(l, pod)
	defaultVia(t, pod.NetNS, "default via 192.168.50.1 dev prim")
	e.del(l, plain)
	e.noDrift()
}

// defaultVia checks that the namespace's one IPv4 default route is want.
func defaultVia(t *testing.T, ns, want string) {
	t.Helper()
	out, err := nstest.RunErr(ns, "ip", "route", "show", "default")
	if got := strings.TrimSpace(out); err != nil || got != want {
		t.Errorf("default routes in %s: %q (%v); want %q", ns, got, err, want)
	}
}
