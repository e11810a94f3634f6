package main

// Privileged end-to-end tests: the reference document's examples
// (reference/macvlan-driver-doc.txt), with mvlan in place of docker, in
// netns sandboxes. Sub-interface parents (eth0.101, eth0.218) are replaced
// by the sandbox's veth eth0/eth1, as the reference allows ("can be
// replaced with eth0"); the 802.1q path runs in the lab.

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestRefPubNet: the simple bridge mode example. A container at
// --ip=172.16.86.10 answers 4 pings from a second container with 0 loss;
// inside, ip route and ip addr look as the reference shows; ps lists it;
// ip netns exec works on it.
func TestRefPubNet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "-d", "macvlan", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	c1 := e.name("1")
	ep := e.runD(c1, "pub_net", "--ip=172.16.86.10")
	out, code := e.pingRun("pub_net", "172.16.86.10", false)
	e.wantPingOK("run --rm --net=pub_net -- ping -c 4 172.16.86.10", out, code)

	mustContain(t, "ip route in "+c1, e.in(c1, "ip", "route"),
		"default via 172.16.86.1 dev eth0", "172.16.86.0/24 dev eth0")
	addr := e.in(c1, "ip", "addr", "show", "dev", "eth0")
	mustContain(t, "ip addr in "+c1, addr, "inet 172.16.86.10/24", "link/ether "+ep.MAC, "UP")
	// The transient container sees the same kind of table (the reference's
	// second container, 172.16.86.2 there: the first free address here is .2 too).
	out, errs, code := e.a.mv("run", "--rm", "--name", e.tmpName(), "--net=pub_net", "--", "sh", "-c", "ip addr show eth0; ip route")
	if code != 0 {
		t.Fatalf("run --rm ip route: exit %d: %s", code, errs)
	}
	mustContain(t, "second container", out, "inet 172.16.86.2/24", "default via 172.16.86.1 dev eth0", "172.16.86.0/24 dev eth0")

	// No IPv6 address: IPv6 is off on the link (no link-local address either).
	if v6 := e.in(c1, "ip", "-6", "addr", "show", "dev", "eth0"); strings.TrimSpace(v6) != "" {
		t.Errorf("v4-only endpoint %s has IPv6 addresses:\n%s", c1, v6)
	}
	// --mac and --ifname are honoured.
	c2 := e.name("2")
	ep2 := e.runD(c2, "pub_net", "--mac=02:42:ac:10:56:0a", "--ifname=lan0")
	if ep2.MAC != "02:42:ac:10:56:0a" || ep2.IfName != "lan0" {
		t.Errorf("run --mac --ifname: ps shows %s %s", ep2.MAC, ep2.IfName)
	}
	mustContain(t, "lan0 in "+c2, e.in(c2, "ip", "addr", "show", "dev", "lan0"), "link/ether 02:42:ac:10:56:0a", "inet "+addrOf(ep2, false))
	mustContain(t, "ip route in "+c2, e.in(c2, "ip", "route"), "default via 172.16.86.1 dev lan0")

	ps := e.a.ok("ps")
	var line string
	for _, l := range strings.Split(ps, "\n") {
		if strings.Contains(l, c1) {
			line = l
		}
	}
	mustContain(t, "ps line of "+c1, line, "pub_net", "172.16.86.10/24", ep.MAC, "eth0")
	if out, err := exec.Command("ip", "netns", "exec", c1, "true").CombinedOutput(); err != nil {
		t.Errorf("ip netns exec %s true: %v\n%s", c1, err, out)
	}
}

// TestRefAuxAndIPRange: --aux-address exclude_host=172.16.86.250 is never
// handed out (ip-range 172.16.86.248/29: .248, .249, .251, ... then
// exhausted), and macnet32 hands out 192.168.32.128 first, then .129.
func TestRefAuxAndIPRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "-d", "macvlan", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1",
		"--ip-range=172.16.86.248/29", "--aux-address=exclude_host=172.16.86.250", "-o", "parent=eth0", "pub_net")
	want := []string{"248", "249", "251", "252", "253", "254"}
	for i, w := range want {
		ep := e.runD(e.name(fmt.Sprint(i)), "pub_net")
		if got := addrOf(ep, false); got != "172.16.86."+w+"/24" {
			t.Errorf("container %d got %s, want 172.16.86.%s/24", i, got, w)
		}
	}
	_, errs, code := e.a.mv("run", "-d", "--name", e.name("x"), "--net", "pub_net")
	if code != 1 || !strings.Contains(errs, "172.16.86.248/29") {
		t.Errorf("run on an exhausted ip-range: exit %d, stderr %q; want 1 naming the range", code, errs)
	}
	if netnsExists(e.name("x")) {
		t.Error("failed run left its namespace")
	}
	_, errs, code = e.a.mv("run", "-d", "--name", e.name("y"), "--net", "pub_net", "--ip=172.16.86.250")
	if code != 1 || !strings.Contains(errs, "172.16.86.250") || !strings.Contains(errs, "exclude_host") {
		t.Errorf("--ip of the aux-address: exit %d, stderr %q; want 1 naming it and exclude_host", code, errs)
	}

	e.a.ok("network", "create", "-d", "macvlan", "--subnet=192.168.32.0/24", "--ip-range=192.168.32.128/25",
		"--gateway=192.168.32.254", "-o", "parent=eth1", "macnet32")
	m1 := e.name("m1")
	if got := addrOf(e.runD(m1, "macnet32"), false); got != "192.168.32.128/24" {
		t.Errorf("macnet32 first container: %s, want 192.168.32.128/24", got)
	}
	mustContain(t, "ip addr in "+m1, e.in(m1, "ip", "addr", "show", "dev", "eth0"), "inet 192.168.32.128/24")
	mustContain(t, "ip route in "+m1, e.in(m1, "ip", "route"), "default via 192.168.32.254 dev eth0")
	if got := addrOf(e.runD(e.name("m2"), "macnet32"), false); got != "192.168.32.129/24" {
		t.Errorf("macnet32 second container: %s, want 192.168.32.129/24", got)
	}
}

// TestRefGatewayRoute: 10.1.100.128/25 without --gateway: the container's
// default route is via the inferred 10.1.100.129, its address the next one.
func TestRefGatewayRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "-d", "macvlan", "--subnet=10.1.100.128/25", "-o", "parent=eth0", "n128")
	c1 := e.name("1")
	if got := addrOf(e.runD(c1, "n128"), false); got != "10.1.100.130/25" {
		t.Errorf("first address %s, want 10.1.100.130/25", got)
	}
	mustContain(t, "ip route in "+c1, e.in(c1, "ip", "route"), "default via 10.1.100.129 dev eth0", "10.1.100.128/25 dev eth0")
}

// TestRefMultiSubnet: mcv101 with two subnets; --ip in each; containers in
// the same subnet ping each other; each default route is its own
// subnet's gateway.
func TestRefMultiSubnet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "-d", "macvlan", "--subnet=10.1.20.0/24", "--subnet=10.1.10.0/24",
		"--gateway=10.1.20.1", "--gateway=10.1.10.1", "-o", "parent=eth0", "mcv101")
	for _, sub := range []string{"20", "10"} {
		c := e.name(sub)
		e.runD(c, "mcv101", "--ip=10.1."+sub+".10")
		mustContain(t, "ip route in "+c, e.in(c, "ip", "route"), "default via 10.1."+sub+".1 dev eth0", "10.1."+sub+".0/24 dev eth0")
		mustContain(t, "ip addr in "+c, e.in(c, "ip", "addr", "show", "dev", "eth0"), "inet 10.1."+sub+".10/24")
		out, code := e.pingRun("mcv101", "10.1."+sub+".10", false, "--ip=10.1."+sub+".9")
		e.wantPingOK("10.1."+sub+".9 pings 10.1."+sub+".10", out, code)
	}
}

// TestRefDualStack: macvlan216 (two v4 subnets, a v6 subnet with gateway
// ::10) and mcv0 (ip-ranges and aux-addresses in both families, gateways
// inferred): addresses and default routes of both families as in the
// reference; ping and ping -6 between containers.
func TestRefDualStack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "-d", "macvlan", "--subnet=192.168.216.0/24", "--subnet=192.168.218.0/24",
		"--gateway=192.168.216.1", "--gateway=192.168.218.1", "--ipv6", "--subnet=2001:db8:abc8::/64",
		"--gateway=2001:db8:abc8::10", "-o", "parent=eth0", "-o", "macvlan_mode=bridge", "macvlan216")
	c216, c218 := e.name("216"), e.name("218")
	ep := e.runD(c216, "macvlan216", "--ip=192.168.216.10")
	// The first dynamic v6 address is ::1 (the gateway is ::10), as the
	// reference's container shows.
	if got := addrOf(ep, true); got != "2001:db8:abc8::1/64" {
		t.Errorf("%s v6 address %q, want 2001:db8:abc8::1/64", c216, got)
	}
	e.runD(c218, "macvlan216", "--ip=192.168.218.10")
	mustContain(t, "ip route in "+c218, e.in(c218, "ip", "route"), "default via 192.168.218.1 dev eth0")
	for _, sub := range []string{"216", "218"} {
		out, code := e.pingRun("macvlan216", "192.168."+sub+".10", false, "--ip=192.168."+sub+".11")
		e.wantPingOK("192.168."+sub+".11 pings 192.168."+sub+".10", out, code)
	}
	c20 := e.name("v6")
	ep = e.runD(c20, "macvlan216", "--ip6=2001:db8:abc8::20")
	if got := addrOf(ep, true); got != "2001:db8:abc8::20/64" {
		t.Errorf("--ip6=2001:db8:abc8::20 gave %v", ep.Addrs)
	}
	mustContain(t, "ip -6 route in "+c20, e.in(c20, "ip", "-6", "route"),
		"2001:db8:abc8::/64 dev eth0", "default via 2001:db8:abc8::10 dev eth0")
	mustContain(t, "ip route in "+c20, e.in(c20, "ip", "route"), "default via 192.168.216.1 dev eth0")
	out, code := e.pingRun("macvlan216", "2001:db8:abc8::20", false)
	e.wantPingOK("ping -6 2001:db8:abc8::20 from a transient container", out, code)
	// Both families given.
	out, errs, code := e.a.mv("run", "--rm", "--name", e.tmpName(), "--net=macvlan216", "--ip=192.168.216.50",
		"--ip6=2001:db8:abc8::50", "--", "ip", "addr", "show", "eth0")
	if code != 0 {
		t.Errorf("run --ip --ip6: exit %d: %s", code, errs)
	}
	mustContain(t, "dual-stack eth0", out, "inet 192.168.216.50/24", "inet6 2001:db8:abc8::50/64 scope global")

	// mcv0: gateways inferred (.1, ::1), aux .2 and ::2: the first
	// container gets 192.168.136.3 and fd11::3, exactly as in the reference.
	e.a.ok("network", "create", "-d", "macvlan", "--subnet=192.168.136.0/24", "--subnet=192.168.138.0/24",
		"--ipv6", "--subnet=fd11::/64", "--ip-range=192.168.136.0/25", "--ip-range=192.168.138.0/25",
		"--aux-address=reserved1=fd11::2", "--aux-address=reserved2=192.168.136.2", "--aux-address=reserved3=192.168.138.2",
		"-o", "parent=eth1", "mcv0")
	m1, m2 := e.name("m1"), e.name("m2")
	ep = e.runD(m1, "mcv0")
	if v4, v6 := addrOf(ep, false), addrOf(ep, true); v4 != "192.168.136.3/24" || v6 != "fd11::3/64" {
		t.Errorf("mcv0 first container: %s %s, want 192.168.136.3/24 fd11::3/64 (the reference's)", v4, v6)
	}
	mustContain(t, "ip addr in "+m1, e.in(m1, "ip", "addr", "show", "dev", "eth0"),
		"inet 192.168.136.3/24", "inet6 fd11::3/64 scope global", "scope link")
	mustContain(t, "ip route in "+m1, e.in(m1, "ip", "route"), "default via 192.168.136.1 dev eth0", "192.168.136.0/24 dev eth0")
	mustContain(t, "ip -6 route in "+m1, e.in(m1, "ip", "-6", "route"), "fd11::/64 dev eth0", "fe80::/64 dev eth0", "default via fd11::1 dev eth0")
	ep = e.runD(m2, "mcv0")
	if v4, v6 := addrOf(ep, false), addrOf(ep, true); v4 != "192.168.136.4/24" || v6 != "fd11::4/64" {
		t.Errorf("mcv0 second container: %s %s, want 192.168.136.4/24 fd11::4/64", v4, v6)
	}
	for _, dst := range []string{"192.168.136.3", "fd11::3"} {
		out, err := e.pingFrom(m2, dst, false)
		e.wantPingOK("mcv0: "+m2+" pings "+dst, out, exitOf(err))
	}
}

// TestRefTwoParentsIsolated: two networks on two parents. Containers of one
// cannot reach containers of the other, not even with an on-link route
// (layer 2 is separate), and mvlan_policy_drops_total{reason="cross_network"}
// counts each frame that its isolation dropped; within each network pings
// work.
func TestRefTwoParentsIsolated(t *testing.T) {
	t.Parallel()
	e := newDPEnv(t, dpModes[0], "eth1") // newEnv's, serving /metrics
	// One switch behind both parents: without mvlan's isolation, frames
	// of one network would reach the other at layer 2.
	for _, args := range [][]string{{"link", "add", "sw0", "type", "bridge"}, {"link", "set", "wire0", "master", "sw0"},
		{"link", "set", "w-eth1", "master", "sw0"}, {"link", "set", "sw0", "up"}} {
		e.sb.Run(t, e.sb.WirePath, append([]string{"ip"}, args...)...)
	}
	e.a.ok("network", "create", "--subnet=192.168.50.0/24", "-o", "parent=eth0", "net50")
	e.a.ok("network", "create", "--subnet=192.168.60.0/24", "-o", "parent=eth1", "net60")
	a1, a2, b1 := e.name("a1"), e.name("a2"), e.name("b1")
	e.runD(a1, "net50", "--ip=192.168.50.10")
	e.runD(a2, "net50", "--ip=192.168.50.11")
	e.runD(b1, "net60", "--ip=192.168.60.10")
	out, err := e.pingFrom(a1, "192.168.50.11", false)
	e.wantPingOK("same network", out, exitOf(err))
	out, code := e.pingRun("net60", "192.168.60.10", false)
	e.wantPingOK("same network (net60)", out, code)

	out, err = e.pingFrom(a1, "192.168.60.10", true)
	e.wantPingFail("net50 -> net60", out, exitOf(err))
	out, code = e.pingRun("net60", "192.168.50.10", true)
	e.wantPingFail("net60 -> net50", out, code)
	// On-link routes both ways: only mvlan's cross-network drop stops it.
	e.in(a2, "ip", "route", "add", "192.168.60.10/32", "dev", "eth0")
	e.in(b1, "ip", "route", "add", "192.168.50.11/32", "dev", "eth0")
	// a2's ARP requests for 192.168.60.10 cross the switch to b1, whose
	// ingress drops each as cross_network (net60's count). Counted from
	// when a1's resolution of its gateway (the ping to 192.168.60.10
	// above) has given up, to when a2's has: the kernel sends
	// mcast_solicit (3) broadcasts, a second apart, then marks the entry
	// FAILED and sends no more. Nothing else crosses meanwhile: net60's
	// transient container is gone, and b1 answered nothing.
	neighFailed(t, e.sb, a1, "192.168.50.1")
	solicit, err := strconv.Atoi(strings.TrimSpace(e.in(a2, "sysctl", "-n", "net.ipv4.neigh.eth0.mcast_solicit")))
	if err != nil {
		t.Fatal(err)
	}
	drops := func(net string) uint64 {
		return counter(e.view("", "").scrape(), "mvlan_policy_drops_total", map[string]string{"network": net, "reason": "cross_network"})
	}
	before50, before60 := drops("net50"), drops("net60")
	out, err = e.pingFrom(a2, "192.168.60.10", true)
	e.wantPingFail("net50 -> net60 with on-link routes over one switch", out, exitOf(err))
	neighFailed(t, e.sb, a2, "192.168.60.10")
	wantDelta(t, `net60's mvlan_policy_drops_total{reason="cross_network"} (a2's ARP requests at b1)`, before60, drops("net60"), solicit, solicit)
	wantDelta(t, `net50's mvlan_policy_drops_total{reason="cross_network"}`, before50, drops("net50"), 0, 0)
}

// neighFailed waits until ns's neighbour entry for ip is FAILED: the
// kernel sent its last ARP request for ip (mcast_solicit of them, one a
// second: up to ~3 s) and got no answer.
func neighFailed(t *testing.T, sb *nstest.Sandbox, ns, ip string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if strings.Contains(sb.Run(t, ns, "ip", "-4", "neigh", "show", ip), "FAILED") {
			return
		}
	}
	t.Fatalf("the neighbour entry for %s in %s did not become FAILED in 10 s: %s", ip, ns, sb.Run(t, ns, "ip", "-4", "neigh", "show", ip))
}

// TestRefParentUnreachable records the kernel behaviour the reference
// documents: a macvlan container cannot reach its parent's own address
// (172.16.86.250 on eth0), while it reaches its neighbours.
func TestRefParentUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.sb.Run(t, e.sb.Path, "ip", "addr", "add", "172.16.86.250/24", "dev", "eth0")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1",
		"--aux-address=exclude_host=172.16.86.250", "-o", "parent=eth0", "pub_net")
	c1, c2 := e.name("1"), e.name("2")
	e.runD(c1, "pub_net", "--ip=172.16.86.10")
	e.runD(c2, "pub_net", "--ip=172.16.86.11")
	out, err := e.pingFrom(c1, "172.16.86.11", false)
	e.wantPingOK("container -> container", out, exitOf(err))
	out, err = e.pingFrom(c1, "172.16.86.250", true)
	e.wantPingFail("container -> parent's own address 172.16.86.250", out, exitOf(err))
	out, err = nstest.RunErr(e.sb.Path, pingArgs("172.16.86.10", true)...)
	e.wantPingFail("host (parent's namespace) -> container", out, exitOf(err))
}
