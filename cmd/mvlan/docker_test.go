package main

// Privileged end-to-end tests of the Docker integration: the agent serves
// Docker's network driver and IPAM plugin protocols on a plugin socket
// with a name of the test's own (/run/docker/plugins/mvt-XXXXXXXX.sock:
// the driver mvt-XXXXXXXX), and a dockerd of the test's own runs in the
// same sandbox namespace. The reference document's examples run with
// `-d DRIVER --ipam-driver DRIVER` in place of `-d macvlan`, and busybox
// in place of alpine; parents are the sandbox's veths (as the reference
// allows, "can be replaced with eth0"). Skipped without docker.io and
// busybox-static.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

type dockerTest struct {
	a      *agentProc
	d      *dockerd
	driver string // -d and --ipam-driver
}

func testDocker(t *testing.T) {
	daemon, cli, busybox := dockerTools(t)
	start := time.Now()
	sb := nstest.NewSandbox(t)
	for _, p := range []string{"eth1", "eth2", "eth3", "eth4"} {
		sb.AddVeth(t, p)
	}
	driver := randName("mvt-")
	sock := filepath.Join("/run/docker/plugins", driver+".sock")
	t.Cleanup(func() { _ = os.Remove(sock) }) // the agent removes it; this after a kill
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock}
	a.start()
	d := startDockerd(t, sb, daemon, cli)
	d.importBusybox(busybox)
	t.Logf("agent and dockerd up, image imported: %v", time.Since(start).Round(time.Millisecond))
	x := &dockerTest{a: a, d: d, driver: driver}
	for _, st := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"PubNet", x.testPubNet},
		{"AuxAndIPRange", x.testAuxAndIPRange},
		{"MultiSubnet", x.testMultiSubnet},
		{"DualStack", x.testDualStack},
		{"HostOnlyInternal", x.testHostOnlyInternal},
		{"DockerIPAM", x.testDockerIPAM},
		{"HostShim", x.testHostShim},
		{"BadInput", x.testBadInput},
		{"FormatShape", x.testFormatShape},
		{"Restarts", x.testRestarts},
	} {
		t0 := time.Now()
		t.Run(st.name, st.fn)
		t.Logf("%s: %v", st.name, time.Since(t0).Round(time.Millisecond))
	}
	if t.Failed() {
		t.Logf("agent log:\n%s\n%s", a.log, d.logTail())
	}
}

// ok runs the docker client and fails the test unless it exits 0.
func (x *dockerTest) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := x.docker(t, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return strings.TrimSpace(out)
}

// docker runs the client, noting the commands that take long.
func (x *dockerTest) docker(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	t0 := time.Now()
	out, errs, code := x.d.docker(args...)
	if took := time.Since(t0); took > 3*time.Second {
		t.Logf("docker %s took %v", strings.Join(args, " "), took.Round(time.Millisecond))
	}
	return out, errs, code
}

// network runs the reference's `docker network create -d macvlan ARGS`
// with this test's driver and IPAM driver and returns the network's ID.
// The network is removed when t ends.
func (x *dockerTest) network(t *testing.T, args ...string) string {
	t.Helper()
	id := x.ok(t, append([]string{"network", "create", "-d", x.driver, "--ipam-driver", x.driver}, args...)...)
	name := args[len(args)-1]
	t.Cleanup(func() { x.d.docker("network", "rm", name) })
	return id
}

// runD runs a container in the background (`docker run -d --name NAME
// ARGS IMAGE sleep 1000`), removed when t ends.
func (x *dockerTest) runD(t *testing.T, name string, args ...string) {
	t.Helper()
	x.ok(t, append(append([]string{"run", "-d", "--name", name}, args...), dockerImage, "sleep", "1000")...)
	t.Cleanup(func() { x.d.docker("rm", "-f", name) })
}

// wantPing runs `docker run --rm RUNARGS IMAGE CMD...` (a ping) and fails
// unless it exits 0 with no loss.
func (x *dockerTest) wantPing(t *testing.T, runArgs []string, cmd ...string) {
	t.Helper()
	args := append(append(append([]string{"run", "--rm"}, runArgs...), dockerImage), cmd...)
	out, errs, code := x.docker(t, args...)
	if code != 0 || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("docker %s: exit %d, want 0 with 0%% packet loss:\n%s%s", strings.Join(args, " "), code, out, errs)
	}
}

func (x *dockerTest) inspect(t *testing.T, container, format string) string {
	t.Helper()
	return x.ok(t, "inspect", "-f", format, container)
}

// ipOf is the container's IPv4 address on its (one) network.
func (x *dockerTest) ipOf(t *testing.T, container string) string {
	t.Helper()
	return x.inspect(t, container, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
}

// endpoint waits (up to 15 s) until mvlan ps lists the container's
// endpoint (by its sandbox) as ready, and returns it.
func (x *dockerTest) endpoint(t *testing.T, container string) api.Endpoint {
	t.Helper()
	key := x.inspect(t, container, "{{.NetworkSettings.SandboxKey}}")
	var last []api.Endpoint
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		last = x.ps(t)
		for _, e := range last {
			if e.Netns == key && e.State == api.EndpointReady {
				return e
			}
		}
	}
	t.Fatalf("mvlan ps has no ready endpoint in %s (container %s) after 15s: %+v", key, container, last)
	return api.Endpoint{}
}

// waitFor polls cond for up to 15 s.
func (x *dockerTest) waitFor(t *testing.T, cond func() bool) bool {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func (x *dockerTest) ps(t *testing.T) []api.Endpoint {
	t.Helper()
	return x.a.endpoints()
}

// mvlanNetwork returns the agent's network with this ID, if it has one.
func (x *dockerTest) mvlanNetwork(t *testing.T, id string) (api.Network, bool) {
	t.Helper()
	cl := api.NewClient(x.a.socket)
	defer cl.Close()
	ns, err := cl.Networks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.ID == id {
			return n, true
		}
	}
	return api.Network{}, false
}

// settled waits (up to 5 s) until the agent reports no drift (Docker
// releases addresses just after a container is gone) and no endpoint or
// temporary link is left in the host namespace.
func (x *dockerTest) settled(t *testing.T) {
	t.Helper()
	var problems []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		problems = drift(t, x.a)
		for name, alias := range links(t, x.a.sb) {
			if strings.HasPrefix(name, "mvt") || strings.Contains(alias, "/ep/") {
				problems = append(problems, "host namespace has link "+name+" ("+alias+")")
			}
		}
		if len(problems) == 0 {
			return
		}
	}
	t.Errorf("not settled after 5s:\n%s", strings.Join(problems, "\n"))
}

// removed removes containers and networks as the reference does and
// checks that the agent forgot them and left nothing behind.
func (x *dockerTest) removed(t *testing.T, containers []string, networks map[string]string) {
	t.Helper()
	if len(containers) > 0 {
		x.ok(t, append([]string{"rm", "-f"}, containers...)...)
	}
	for name, id := range networks {
		x.ok(t, "network", "rm", name)
		if _, ok := x.mvlanNetwork(t, id); ok {
			t.Errorf("docker network rm %s: mvlan network ls still lists %s", name, id[:12])
		}
	}
	x.settled(t)
}

// testPubNet: the simple bridge mode example. Two containers ping; the
// addresses, MAC and routes are the reference's; mvlan network ls and ps
// show the network and the container; removal leaves nothing.
func (x *dockerTest) testPubNet(t *testing.T) {
	id := x.network(t, "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	x.runD(t, "pn1", "--net", "pub_net", "--ip", "172.16.86.10")
	x.settled(t)
	before := x.netStats(t, id[:12])
	x.wantPing(t, []string{"--net", "pub_net"}, "ping", "-c", "4", "172.16.86.10")
	// The counters move for traffic between Docker's containers: each of
	// the pinger and pn1 counts its own frames, 4 requests and 4 replies
	// each way, plus at most arpSlack ARP frames, as in wantPingCounted
	// (the pinger's request for .10 and pn1's answer; seen here: none,
	// +8 each in three runs).
	after := x.netStats(t, id[:12])
	wantDelta(t, "pub_net rx packets", before.Rx.Packets, after.Rx.Packets, 8, 8+arpSlack)
	wantDelta(t, "pub_net tx packets", before.Tx.Packets, after.Tx.Packets, 8, 8+arpSlack)

	mac := x.inspect(t, "pn1", "{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}")
	mustContain(t, "ip addr in pn1", x.ok(t, "exec", "pn1", "ip", "addr", "show", "eth0"), "inet 172.16.86.10/24", "link/ether "+mac)
	mustContain(t, "ip route in pn1", x.ok(t, "exec", "pn1", "ip", "route"), "default via 172.16.86.1 dev eth0", "172.16.86.0/24 dev eth0")
	// The reference's second container: the first free address, .2.
	out := x.ok(t, "run", "--rm", "--net=pub_net", dockerImage, "sh", "-c", "ip addr show eth0; ip route")
	mustContain(t, "second container", out, "inet 172.16.86.2/24", "default via 172.16.86.1 dev eth0", "172.16.86.0/24 dev eth0")

	n, ok := x.mvlanNetwork(t, id)
	switch {
	case !ok:
		t.Fatalf("mvlan network ls does not list Docker's network %s", id[:12])
	case n.Name != id[:12] || n.Parent != "eth0" || len(n.Pools) != 1 || n.Pools[0].Gateway.String() != "172.16.86.1":
		t.Errorf("mvlan's network: name %s parent %s pools %+v; want name %s, parent eth0, gateway 172.16.86.1", n.Name, n.Parent, n.Pools, id[:12])
	}
	mustContain(t, "mvlan network ls", x.a.ok("network", "ls"), id[:12], "eth0", "172.16.86.0/24")
	ep := x.endpoint(t, "pn1")
	if ep.MAC != mac || addrOf(ep, false) != "172.16.86.10/24" || ep.IfName != "eth0" || ep.NetworkID != id || ep.Ifindex == 0 {
		t.Errorf("mvlan ps: %+v; want MAC %s, 172.16.86.10/24 on eth0 of network %s, datapath attached", ep, mac, id[:12])
	}
	mustContain(t, "mvlan ps", x.a.ok("ps"), ep.Name, "172.16.86.10/24", mac, ep.Netns)
	// mvlan's IPAM hands out this network's addresses: mvlan run picks one.
	if n.Options["docker_ipam"] != "" {
		t.Errorf("a network of mvlan's IPAM is marked as Docker's: options %v", n.Options)
	}
	mpn := x.a.sb.Name + "-mpn1"
	t.Cleanup(func() { x.a.mv("rm", "-f", mpn) })
	x.a.ok("run", "-d", "--name", mpn, "--net", id[:12])
	x.a.ok("rm", "-f", mpn)

	// The endpoint programs hold for Docker's containers too: a container
	// that takes an address it was not given is not heard (the programs
	// attach just after the container starts: hence the sleep). Its echo
	// request waits for an answer to its ARP requests (sender .99), which
	// its egress drops: the kernel sends mcast_solicit (3) of them, a
	// second apart, all within ping's 4 s; the request itself never leaves.
	spoof0 := x.netStats(t, id[:12]).Drops
	out, errs, code := x.docker(t, "run", "--rm", "--net", "pub_net", "--cap-add", "NET_ADMIN", dockerImage, "sh", "-c",
		"sleep 1; ip addr add 172.16.86.99/24 dev eth0; ping -c 1 -W 4 -I 172.16.86.99 172.16.86.10")
	if code == 0 || !strings.Contains(out, "100% packet loss") {
		t.Errorf("ping from a spoofed source: exit %d, want 100%% packet loss:\n%s%s", code, out, errs)
	}
	spoof1 := x.netStats(t, id[:12]).Drops
	wantDelta(t, "arp_spoof drops of the spoofer's ARP requests", spoof0["arp_spoof"].Packets, spoof1["arp_spoof"].Packets, 3, 3)
	wantDelta(t, "ip_spoof drops (its echo request never left)", spoof0["ip_spoof"].Packets, spoof1["ip_spoof"].Packets, 0, 0)
	x.settled(t)
	x.removed(t, []string{"pn1"}, map[string]string{"pub_net": id})
}

// testHostShim: a Docker network with -o host_shim=auto. The host reaches
// Docker's containers through the shim: a route per container address,
// added when the container joins and deleted when it goes (the driver's
// path, which changes only that container's routes).
func (x *dockerTest) testHostShim(t *testing.T) {
	id := x.network(t, "--subnet=172.16.88.0/24", "--gateway=172.16.88.1", "-o", "parent=eth1", "-o", "host_shim=auto", "shim_net")
	n := x.a.inspectNet(id)
	if n.HostShim == nil || n.HostShim.Link == "" || n.HostShim.Status != "ok" {
		t.Fatalf("inspect host_shim = %+v; want a shim link, ok", n.HostShim)
	}
	shim, sb := n.HostShim.Link, x.a.sb
	routes := func(want ...string) bool { return slices.Equal(shimRoutes(t, sb, shim), want) }
	x.runD(t, "hs1", "--net", "shim_net", "--ip", "172.16.88.10")
	x.runD(t, "hs2", "--net", "shim_net", "--ip", "172.16.88.11")
	if !x.waitFor(t, func() bool { return routes("172.16.88.10", "172.16.88.11") }) {
		t.Fatalf("routes through %s: %v, want one per container", shim, shimRoutes(t, sb, shim))
	}
	for _, ip := range []string{"172.16.88.10", "172.16.88.11"} {
		out, err := nstest.RunErr(sb.Path, "ping", "-c", "2", "-W", "1", ip)
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Errorf("host -> %s through the shim: %v\n%s", ip, err, out)
		}
	}
	x.ok(t, "rm", "-f", "hs2")
	if !x.waitFor(t, func() bool { return routes("172.16.88.10") }) {
		t.Fatalf("after docker rm hs2: routes %v, want hs1's only", shimRoutes(t, sb, shim))
	}
	x.settled(t)
	x.removed(t, []string{"hs1"}, map[string]string{"shim_net": id})
	if countShims(t, sb) != 0 {
		t.Errorf("docker network rm shim_net left a shim link")
	}
}

// testAuxAndIPRange: --aux-address is never handed out (not even on
// request), --ip-range hands out n, n+1 upward from its start.
func (x *dockerTest) testAuxAndIPRange(t *testing.T) {
	pub := x.network(t, "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "--ip-range=172.16.86.248/29",
		"--aux-address=exclude_host=172.16.86.250", "-o", "parent=eth0", "pub_net")
	var names []string
	for _, want := range []string{"248", "249", "251"} {
		name := "ax" + want
		x.runD(t, name, "--net=pub_net")
		names = append(names, name)
		if got := x.ipOf(t, name); got != "172.16.86."+want {
			t.Errorf("container %s: %s, want 172.16.86.%s", name, got, want)
		}
	}
	_, errs, code := x.d.docker("run", "--rm", "--net=pub_net", "--ip=172.16.86.250", dockerImage, "true")
	if code == 0 || !strings.Contains(errs, "172.16.86.250") || !strings.Contains(errs, "exclude_host") {
		t.Errorf("--ip of the aux-address: exit %d, stderr %q; want a failure naming it and exclude_host", code, errs)
	}

	m32 := x.network(t, "--subnet=192.168.32.0/24", "--ip-range=192.168.32.128/25", "--gateway=192.168.32.254", "-o", "parent=eth1", "macnet32")
	out := x.ok(t, "run", "--net=macnet32", "--rm", dockerImage, "sh", "-c", "ip addr show eth0; ip route")
	mustContain(t, "macnet32 container", out, "inet 192.168.32.128/24", "default via 192.168.32.254 dev eth0")
	for _, want := range []string{"128", "129"} {
		name := "m32-" + want
		x.runD(t, name, "--net=macnet32")
		names = append(names, name)
		if got := x.ipOf(t, name); got != "192.168.32."+want {
			t.Errorf("macnet32 container %s: %s, want 192.168.32.%s", name, got, want)
		}
	}
	x.settled(t)
	x.removed(t, names, map[string]string{"pub_net": pub, "macnet32": m32})
}

// testMultiSubnet: mcv101, two subnets; --ip in each; each container's
// default route is its own subnet's gateway; containers of one subnet ping.
func (x *dockerTest) testMultiSubnet(t *testing.T) {
	id := x.network(t, "--subnet=10.1.20.0/24", "--subnet=10.1.10.0/24", "--gateway=10.1.20.1", "--gateway=10.1.10.1",
		"-o", "parent=eth2", "mcv101")
	var names []string
	for _, sub := range []string{"20", "10"} {
		name := "mcv" + sub
		x.runD(t, name, "--net=mcv101", "--ip=10.1."+sub+".10")
		names = append(names, name)
		mustContain(t, "ip route in "+name, x.ok(t, "exec", name, "ip", "route"), "default via 10.1."+sub+".1 dev eth0", "10.1."+sub+".0/24 dev eth0")
		// (The reference pings the container's own address; here another's.)
		x.wantPing(t, []string{"--net=mcv101", "--ip=10.1." + sub + ".9"}, "ping", "-c", "4", "-A", "10.1."+sub+".10")
	}
	x.settled(t)
	x.removed(t, names, map[string]string{"mcv101": id})
}

// testDualStack: macvlan216 (two IPv4 subnets, IPv6 with gateway ::10):
// pings in each subnet, ping6; mcv0: ip-ranges and aux-addresses in both
// families, gateways inferred: the reference's .3 and fd11::3.
func (x *dockerTest) testDualStack(t *testing.T) {
	id := x.network(t, "--subnet=192.168.216.0/24", "--subnet=192.168.218.0/24",
		"--gateway=192.168.216.1", "--gateway=192.168.218.1",
		"--ipv6", "--subnet=2001:db8:abc8::/64", "--gateway=2001:db8:abc8::10",
		"-o", "parent=eth3", "-o", "macvlan_mode=bridge", "macvlan216")
	x.runD(t, "macnet216_test", "--net=macvlan216", "--ip=192.168.216.10")
	x.runD(t, "macnet218_test", "--net=macvlan216", "--ip=192.168.218.10")
	x.wantPing(t, []string{"--net=macvlan216", "--ip=192.168.216.11"}, "ping", "-c4", "192.168.216.10")
	x.wantPing(t, []string{"--net=macvlan216", "--ip=192.168.218.11"}, "ping", "-c4", "192.168.218.10")
	x.runD(t, "v6", "--net=macvlan216", "--ip6=2001:db8:abc8::20")
	x.wantPing(t, []string{"--net=macvlan216"}, "ping6", "-c4", "2001:db8:abc8::20")

	mustContain(t, "ip addr in macnet216_test", x.ok(t, "exec", "macnet216_test", "ip", "addr", "show", "eth0"),
		"inet 192.168.216.10/24", "inet6 2001:db8:abc8::1/64")
	mustContain(t, "ip route in macnet216_test", x.ok(t, "exec", "macnet216_test", "ip", "route"), "default via 192.168.216.1 dev eth0")
	mustContain(t, "ip -6 route in macnet216_test", x.ok(t, "exec", "macnet216_test", "ip", "-6", "route"),
		"2001:db8:abc8::/64 dev eth0", "default via 2001:db8:abc8::10 dev eth0")
	mustContain(t, "ip addr in v6", x.ok(t, "exec", "v6", "ip", "addr", "show", "eth0"), "inet6 2001:db8:abc8::20/64")
	ep := x.endpoint(t, "v6")
	if addrOf(ep, true) != "2001:db8:abc8::20/64" {
		t.Errorf("mvlan ps: v6 has %v, want 2001:db8:abc8::20/64", ep.Addrs)
	}

	mcv0 := x.network(t, "--subnet=192.168.136.0/24", "--subnet=192.168.138.0/24", "--ipv6", "--subnet=fd11::/64",
		"--ip-range=192.168.136.0/25", "--ip-range=192.168.138.0/25",
		"--aux-address=reserved1=fd11::2", "--aux-address=reserved2=192.168.136.2", "--aux-address=reserved3=192.168.138.2",
		"-o", "parent=eth4", "mcv0")
	out := x.ok(t, "run", "--net=mcv0", "--rm", dockerImage, "sh", "-c", "ip addr show eth0; ip route; ip -6 route")
	mustContain(t, "mcv0 container", out, "inet 192.168.136.3/24", "inet6 fd11::3/64",
		"default via 192.168.136.1 dev eth0", "default via fd11::1 dev eth0")

	// A second network: Docker names the link eth1; mvlan ps lists the
	// container once per network, both in the same sandbox.
	x.ok(t, "network", "connect", "mcv0", "v6")
	mustContain(t, "eth1 of v6", x.ok(t, "exec", "v6", "ip", "addr", "show", "eth1"), "inet 192.168.136.3/24")
	key := x.inspect(t, "v6", "{{.NetworkSettings.SandboxKey}}")
	onNets := func() map[string]string {
		m := map[string]string{}
		for _, e := range x.ps(t) {
			if e.Netns == key {
				m[e.NetworkID] = e.IfName
			}
		}
		return m
	}
	// The new endpoint is listed at once, its interface name once the
	// agent has seen Docker move the link (it polls for that).
	want := func(m map[string]string) bool { return len(m) == 2 && m[mcv0] == "eth1" && m[id] == "eth0" }
	if !x.waitFor(t, func() bool { return want(onNets()) }) {
		t.Errorf("mvlan ps for v6's sandbox: %v; want eth0 on macvlan216 and eth1 on mcv0", onNets())
	}
	x.ok(t, "network", "disconnect", "mcv0", "v6")
	if got := onNets(); len(got) != 1 || got[id] != "eth0" {
		t.Errorf("after docker network disconnect, mvlan ps for v6's sandbox: %v; want eth0 on macvlan216 only", got)
	}
	x.settled(t)
	x.removed(t, []string{"macnet216_test", "macnet218_test", "v6"}, map[string]string{"macvlan216": id, "mcv0": mcv0})
}

// testHostOnlyInternal: no -o parent (mvlan makes the link) and
// --internal (no default route); containers ping each other.
func (x *dockerTest) testHostOnlyInternal(t *testing.T) {
	id := x.network(t, "--subnet=10.9.4.0/24", "--internal", "hostonly")
	x.runD(t, "ho1", "--net=hostonly", "--ip=10.9.4.10")
	x.wantPing(t, []string{"--net=hostonly"}, "ping", "-c", "2", "-A", "10.9.4.10")
	routes := x.ok(t, "exec", "ho1", "ip", "route")
	if strings.Contains(routes, "default") || !strings.Contains(routes, "10.9.4.0/24 dev eth0") {
		t.Errorf("ip route in an --internal network's container:\n%s\nwant the subnet route only", routes)
	}
	n, ok := x.mvlanNetwork(t, id)
	if !ok || n.ParentKind != api.ParentHostOnly || !n.Internal {
		t.Errorf("mvlan's network: %+v; want a host-only, internal network", n)
	}
	x.settled(t)
	x.removed(t, []string{"ho1"}, map[string]string{"hostonly": id})
}

// testDockerIPAM: -d DRIVER with Docker's own IPAM (no --ipam-driver):
// the agent takes the addresses Docker's IPAM gives; -o name= names the
// network in mvlan; mvlan run attaches to it only with --ip.
func (x *dockerTest) testDockerIPAM(t *testing.T) {
	id := x.ok(t, "network", "create", "-d", x.driver, "--subnet=10.9.5.0/24", "-o", "parent=eth1", "-o", "name=dockeripam", "dockeripam")
	t.Cleanup(func() { x.d.docker("network", "rm", "dockeripam") })
	x.runD(t, "di1", "--net=dockeripam", "--ip=10.9.5.10")
	x.wantPing(t, []string{"--net=dockeripam"}, "ping", "-c", "2", "-A", "10.9.5.10")
	if n, ok := x.mvlanNetwork(t, id); !ok || n.Name != "dockeripam" {
		t.Errorf("mvlan's network: %+v; want the name dockeripam", n)
	}
	if ep := x.endpoint(t, "di1"); addrOf(ep, false) != "10.9.5.10/24" {
		t.Errorf("mvlan ps: %+v; want 10.9.5.10/24", ep)
	}
	// mvlan's own front ends attach to it only with an address given:
	// Docker's IPAM would hand one mvlan picked to its next container.
	m1, m2 := x.a.sb.Name+"-mdi1", x.a.sb.Name+"-mdi2" // /run/netns/NAME: the sandbox's names
	t.Cleanup(func() { x.a.mv("rm", "-f", m1, m2) })
	if _, errs, code := x.a.mv("run", "-d", "--name", m1, "--net", "dockeripam"); code == 0 || !strings.Contains(errs, "handed out by Docker's IPAM driver") || !strings.Contains(errs, "--ip") {
		t.Errorf("mvlan run on a network of Docker's IPAM without --ip: exit %d, %q; want refused saying to give --ip", code, errs)
	}
	x.a.ok("run", "-d", "--name", m2, "--net", "dockeripam", "--ip", "10.9.5.200")
	x.runD(t, "di2", "--net=dockeripam")
	if ep := x.endpoint(t, "di2"); addrOf(ep, false) == "" || addrOf(ep, false) == "10.9.5.200/24" {
		t.Errorf("di2 (Docker's IPAM): %+v; want an address of its own", ep)
	}
	x.a.ok("rm", "-f", m2)
	x.settled(t)
	x.removed(t, []string{"di1", "di2"}, map[string]string{"dockeripam": id})
}

// testBadInput: what mvlan refuses, Docker reports, and nothing is left.
func (x *dockerTest) testBadInput(t *testing.T) {
	create := func(args ...string) string {
		_, errs, code := x.d.docker(append([]string{"network", "create", "-d", x.driver, "--ipam-driver", x.driver}, args...)...)
		if code == 0 {
			x.d.docker("network", "rm", args[len(args)-1])
			t.Errorf("docker network create %s succeeded; want it refused", strings.Join(args, " "))
		}
		return errs
	}
	mustContain(t, "no --subnet", create("-o", "parent=eth0", "nosub"), "--subnet")
	mustContain(t, "unknown mode", create("--subnet=10.9.0.0/24", "-o", "parent=eth0", "-o", "macvlan_mode=bogus", "badmode"), "macvlan_mode")
	mustContain(t, "missing parent", create("--subnet=10.9.0.0/24", "-o", "parent=nosuch0", "noparent"), "nosuch0")
	id := x.network(t, "--subnet=10.9.0.0/24", "-o", "parent=eth0", "first")
	mustContain(t, "second network on eth0", create("--subnet=10.9.1.0/24", "-o", "parent=eth0", "second"), "eth0")
	mustContain(t, "overlapping subnet", create("--subnet=10.9.0.0/25", "-o", "parent=eth1", "overlap"), "overlaps")
	if _, errs, code := x.d.docker("run", "--rm", "--net=first", "--ip=10.9.0.1", dockerImage, "true"); code == 0 || !strings.Contains(errs, "gateway") {
		t.Errorf("--ip of the gateway: exit %d, stderr %q; want a failure naming the gateway", code, errs)
	}
	x.removed(t, nil, map[string]string{"first": id})
	for _, name := range []string{"nosub", "badmode", "noparent", "second", "overlap"} {
		if out, _, _ := x.d.docker("network", "ls", "-q", "--filter", "name=^"+name+"$"); strings.TrimSpace(out) != "" {
			t.Errorf("refused network %s exists in Docker", name)
		}
	}
}

// testRestarts: the agent restarted under running containers; dockerd
// restarted while the agent runs, then the agent; dockerd started while the
// plugin socket is gone, the agent started after it: each time the network
// works (the container, started again after a dockerd restart, answers).
func (x *dockerTest) testRestarts(t *testing.T) {
	id := x.network(t, "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	// sleep ignores SIGTERM: KILL lets dockerd stop it without waiting.
	x.runD(t, "r1", "--net=pub_net", "--ip=172.16.86.10", "--stop-signal=KILL")
	ping := func(what string) {
		t.Helper()
		x.endpoint(t, "r1")
		x.wantPing(t, []string{"--net=pub_net"}, "ping", "-c", "2", "-A", "172.16.86.10")
		if t.Failed() {
			t.Fatalf("after %s", what)
		}
	}
	ping("start")

	before := x.endpoint(t, "r1")
	x.a.stop()
	x.a.start()
	if after := x.endpoint(t, "r1"); after.ID != before.ID || after.Ifindex != before.Ifindex {
		t.Errorf("agent restart changed r1's endpoint: %+v, was %+v", after, before)
	}
	ping("an agent restart")

	x.d.stop()
	if eps := x.ps(t); len(eps) != 0 {
		t.Errorf("dockerd stopped its containers, but mvlan ps lists %+v", eps)
	}
	x.settled(t)
	x.d.start()
	x.ok(t, "start", "r1")
	ping("a dockerd restart")

	x.d.stop()
	x.d.start()
	x.a.stop()
	x.a.start()
	x.ok(t, "start", "r1")
	ping("a dockerd restart, then an agent restart")

	x.d.stop()
	x.a.stop()
	x.d.start() // the plugin socket is gone: dockerd gives up on it after 15 s
	x.a.start()
	x.ok(t, "start", "r1")
	ping("dockerd started without the agent, the agent started after")
	if _, ok := x.mvlanNetwork(t, id); !ok {
		t.Errorf("mvlan network ls lost pub_net")
	}
	x.settled(t)
	x.removed(t, []string{"r1"}, map[string]string{"pub_net": id})
}

// netStats returns what mvlan stats counted for the network named name.
func (x *dockerTest) netStats(t *testing.T, name string) api.NetworkStats {
	t.Helper()
	var st api.Stats
	if err := json.Unmarshal([]byte(x.a.ok("stats", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Networks {
		if n.Network == name {
			return n
		}
	}
	t.Fatalf("mvlan stats has no network %s", name)
	return api.NetworkStats{}
}
