package main

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/mvlan/mvlan/internal/nstest"
)

// gw is pub_net's gateway.
var gw = netip.MustParseAddr("172.16.86.1")

// TestCNIKeptDefaultRoute: a Multus secondary network. The pod's
// namespace has its primary interface and default route already; mvlan's
// net1 leaves that route alone, and the ADD result (what Multus puts in
// the pod's network-status, and takes a default route from) lists no
// default route of mvlan's, also when the ADD is repeated after an agent
// restart; CHECK passes; the endpoint shows the gateway as unrouted. A
// pod without a default route gets mvlan's, and its result says so; so
// does one whose default route has a higher metric (mvlan's comes first).
func TestCNIKeptDefaultRoute(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	pod := e.podWithPrimary("pod")
	r := e.add(l, pod)
	if len(r.IPs) != 1 || r.IPs[0].Gateway.String() != gw.String() || len(r.Routes) != 0 {
		t.Errorf("ADD beside a default route: ips %v routes %v; want one address with gateway %s, no route", r.IPs, r.Routes, gw)
	}
	defaultRoutes(t, pod.NetNS, "default via 192.168.50.1 dev prim")
	if ep := e.endpoint(e.sb.Name + "-pod"); !slices.Equal(ep.Unrouted, []netip.Addr{gw}) {
		t.Errorf("endpoint's unrouted gateways %v; want [%s]", ep.Unrouted, gw)
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
	if len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" || r.Routes[0].GW.String() != gw.String() {
		t.Errorf("ADD to a namespace without a default route: routes %v; want default via %s", r.Routes, gw)
	}
	defaultRoutes(t, plain.NetNS, "default via 172.16.86.1 dev eth0")
	if ep := e.endpoint(e.sb.Name + "-plain"); len(ep.Unrouted) != 0 {
		t.Errorf("endpoint with its default route: unrouted gateways %v; want none", ep.Unrouted)
	}

	low := e.container("low")
	e.primary(low.NetNS, "metric", "100")
	if r := e.add(l, low); len(r.Routes) != 1 || r.Routes[0].GW.String() != gw.String() {
		t.Errorf("ADD beside a metric 100 default route: routes %v; want default via %s", r.Routes, gw)
	}
	defaultRoutes(t, low.NetNS, "default via 172.16.86.1 dev eth0", "default via 192.168.50.1 dev prim metric 100")
	if err := e.cni.CheckNetworkList(context.Background(), l, low); err != nil {
		t.Errorf("CHECK beside a metric 100 default route: %v", err)
	}
	for _, rt := range []*libcni.RuntimeConf{low, pod, plain} {
		e.del(l, rt)
	}
	defaultRoutes(t, pod.NetNS, "default via 192.168.50.1 dev prim")
	e.noDrift()
}

// TestCNIUnroutedAfterRestart: the unrouted gateway of an endpoint is
// found in the kernel again by a start that adopts the endpoint (the
// agent died once its record was on disk as "creating", the commit held
// until the link was whole), and by one that makes its link again (lost
// while the agent was down, when the namespace got a default route of its
// own).
func TestCNIUnroutedAfterRestart(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	adopted := e.podWithPrimary("adopted")
	e.restartCrashing("endpoint-create:after-state", "endpoint-create:before-state", time.Second)
	if _, err := e.cni.AddNetworkList(context.Background(), l, adopted); err == nil {
		t.Fatal("ADD during which the agent died succeeded")
	}
	e.a.WaitExit()
	e.a.Env = nil
	e.a.Start()
	if !strings.Contains(e.a.Log(), "adopted endpoint") {
		t.Fatalf("the start did not adopt the endpoint caught creating:\n%s", e.a.Log())
	}
	if ep := e.endpoint(e.sb.Name + "-adopted"); !slices.Equal(ep.Unrouted, []netip.Addr{gw}) {
		t.Errorf("adopted endpoint's unrouted gateways %v; want [%s]", ep.Unrouted, gw)
	}
	if r := e.add(l, adopted); len(r.Routes) != 0 || len(r.IPs) != 1 {
		t.Errorf("ADD again after the adoption: ips %v routes %v; want the address, no route", r.IPs, r.Routes)
	}

	remade := e.container("remade")
	e.add(l, remade)
	e.a.Stop()
	e.sb.Run(t, remade.NetNS, "ip", "link", "del", "eth0")
	e.primary(remade.NetNS)
	e.a.Start()
	if !strings.Contains(e.a.Log(), "re-attached endpoint") {
		t.Fatalf("the start did not make the lost link again:\n%s", e.a.Log())
	}
	if ep := e.endpoint(e.sb.Name + "-remade"); !slices.Equal(ep.Unrouted, []netip.Addr{gw}) {
		t.Errorf("re-made endpoint's unrouted gateways %v; want [%s]", ep.Unrouted, gw)
	}
	e.del(l, adopted)
	e.del(l, remade)
}

// podWithPrimary makes a namespace as Kubernetes hands it to Multus for a
// secondary network (net1): its primary interface has the default route.
func (e *env) podWithPrimary(name string) *libcni.RuntimeConf {
	e.t.Helper()
	pod := e.container(name)
	pod.IfName = "net1"
	e.primary(pod.NetNS)
	return pod
}

// primary gives namespace ns an interface prim (a veth) with an address
// and a default route via 192.168.50.1, with the route's extra arguments.
func (e *env) primary(ns string, route ...string) {
	e.t.Helper()
	for _, args := range [][]string{
		{"link", "add", "prim", "type", "veth", "peer", "name", "prim-peer"},
		{"addr", "add", "192.168.50.2/24", "dev", "prim"},
		{"link", "set", "prim-peer", "up"},
		{"link", "set", "prim", "up"},
		append([]string{"route", "add", "default", "via", "192.168.50.1"}, route...),
	} {
		e.sb.Run(e.t, ns, append([]string{"ip"}, args...)...)
	}
}

// TestCNIDHCPResult: on a DHCP network the ADD result says what the
// lease gave (real dnsmasq on the wire): the address with the lease's
// router as its gateway, the default route via it, the lease's DNS
// server and domain; beside a pod's own default route, no route, the
// router listed as unrouted. CHECK passes.
func TestCNIDHCPResult(t *testing.T) {
	e := newEnv(t)
	e.sb.Run(t, e.sb.WirePath, "ip", "addr", "add", "192.168.60.1/24", "dev", "wire0")
	nstest.StartDnsmasq(t, e.sb.WirePath, "wire0", "--dhcp-authoritative",
		"--dhcp-range=192.168.60.100,192.168.60.150,255.255.255.0,2m",
		"--dhcp-option=option:router,192.168.60.1", "--dhcp-option=option:dns-server,192.168.60.53",
		"--dhcp-option=option:domain-name,lan.example")
	e.a.CLI("network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0", "lan")
	e.net = "lan"
	l := e.list("1.1.0", "")
	plain := e.container("plain")
	r := e.add(l, plain)
	if len(r.IPs) != 1 {
		t.Fatalf("DHCP ADD: ips %v; want one", r.IPs)
	}
	a, _ := netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
	if !netip.MustParsePrefix("192.168.60.0/24").Contains(a) || a.As4()[3] < 100 || a.As4()[3] > 150 ||
		r.IPs[0].Address.String() != a.String()+"/24" || r.IPs[0].Gateway.String() != "192.168.60.1" {
		t.Errorf("DHCP ADD: ips %v; want one address of 192.168.60.100-150/24 with gateway 192.168.60.1", r.IPs)
	}
	if len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" || r.Routes[0].GW.String() != "192.168.60.1" {
		t.Errorf("DHCP ADD: routes %v; want default via 192.168.60.1", r.Routes)
	}
	if d := r.DNS; !slices.Equal(d.Nameservers, []string{"192.168.60.53"}) || d.Domain != "lan.example" {
		t.Errorf("DHCP ADD: dns %+v; want nameserver 192.168.60.53, domain lan.example", d)
	}
	defaultRoutes(t, plain.NetNS, "default via 192.168.60.1 dev eth0")

	pod := e.podWithPrimary("pod")
	r = e.add(l, pod)
	if len(r.IPs) != 1 || r.IPs[0].Gateway.String() != "192.168.60.1" || len(r.Routes) != 0 {
		t.Errorf("DHCP ADD beside a default route: ips %v routes %v; want the address with gateway 192.168.60.1, no route", r.IPs, r.Routes)
	}
	defaultRoutes(t, pod.NetNS, "default via 192.168.50.1 dev prim")
	if ep := e.endpoint(e.sb.Name + "-pod"); !slices.Equal(ep.Unrouted, []netip.Addr{netip.MustParseAddr("192.168.60.1")}) {
		t.Errorf("endpoint's unrouted gateways %v; want [192.168.60.1]", ep.Unrouted)
	}
	for _, rt := range []*libcni.RuntimeConf{plain, pod} {
		if err := e.cni.CheckNetworkList(context.Background(), l, rt); err != nil {
			t.Errorf("CHECK %s: %v", rt.ContainerID, err)
		}
		e.del(l, rt)
	}
	e.noDrift()
}

// defaultRoutes checks that the namespace's IPv4 default routes are want,
// in the kernel's order.
func defaultRoutes(t *testing.T, ns string, want ...string) {
	t.Helper()
	out, err := nstest.RunErr(ns, "ip", "route", "show", "default")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		got = append(got, strings.TrimSpace(line))
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("default routes in %s: %q (%v); want %q", ns, got, err, want)
	}
}
