package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// testRAIgnoreWire (TestDockerd/RAIgnoreWire): router advertisements from a rogue host on the wire,
// with a default-router lifetime and an autonomous prefix of the subnet,
// toward containers of a network with IPv6 and the default -o
// ipv6_ra=ignore: a Docker container (dockerd moves its link into the
// container, where the kernel's defaults are accept_ra=1 and autoconf=1)
// and a container of mvlan run.
//   - While Docker starts its container, one every 5 ms (its link is up
//     before the agent can attach its programs): the start succeeds and
//     takes none of them.
//   - Then 3: each is dropped on each container's ingress, counted as
//     ra_ignore (exactly 3 × 2); neither container has a default route
//     via the rogue or a SLAAC address, and the Docker container's link
//     has accept_ra=0 as the other's.
//
// And a Docker container of a network with -o ipv6_ra=accept takes its
// gateway's RA (a default route via fe80::1), not a rogue's (ra_source,
// exactly 3), and makes no SLAAC address of the prefix (autoconf=0).
// About 10 s.
func testRAIgnoreWire(t *testing.T) {
	daemon, cli, busybox := dockerTools(t)
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	cleanupContainers(t, sb.Name+"-c")
	driver := randName("mvt-")
	sock := filepath.Join("/run/docker/plugins", driver+".sock")
	t.Cleanup(func() { _ = os.Remove(sock) }) // the agent removes it; this after a kill
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock}
	e := &dpEnv{env: &env{t: t, sb: sb, a: a}, mode: dpModes[0], flags: []string{"--metrics-addr", metricsAddr}}
	startWith(a, e.flags...)
	t.Cleanup(e.cleanup)
	d := startDockerd(t, sb, daemon, cli)
	d.importBusybox(busybox)
	x := &dockerTest{a: a, d: d, driver: driver}
	defer func() {
		if t.Failed() {
			t.Logf("agent log:\n%s\n%s", a.log, d.logTail())
		}
	}()
	prefix := netip.MustParsePrefix("2001:db8:86::/64")
	conf := func(ns, key string) string {
		return strings.TrimSpace(e.in(ns, "cat", "/proc/sys/net/ipv6/conf/eth0/"+key))
	}
	// tookNone: ns has no route via a rogue and only its own global address.
	tookNone := func(ns, own string, rogues ...netip.Addr) {
		t.Helper()
		r := e.in(ns, "ip", "-6", "route")
		for _, rogue := range rogues {
			if strings.Contains(r, rogue.String()) {
				t.Errorf("%s took the RA of %s:\n%s", ns, rogue, r)
			}
		}
		if a := e.in(ns, "ip", "-6", "-o", "addr", "show", "scope", "global"); strings.Count(a, " inet6 ") != 1 || !strings.Contains(a, " "+own+"/64 ") {
			t.Errorf("%s has global IPv6 addresses\n%swant only its own %s/64 (no SLAAC address)", ns, a, own)
		}
	}

	// A rogue sends all along while Docker makes, moves and brings up the
	// link, until the agent has finished it.
	spam := addr("fe80::77")
	stop, spammed := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		defer func() { spammed <- n }()
		frame := routerAdvert(t, nstest.MAC(t, "02:00:5e:00:53:77"), spam, prefix)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if err := sendEach(t, sb.WirePath, "wire0", frame, 1)[0]; err == nil {
				n++
			}
		}
	}()
	id := x.network(t, "--ipv6", "--subnet=172.16.86.0/24", "--subnet="+prefix.String(), "-o", "parent=eth0", "rign")
	_, errs, code := x.docker(t, "run", "-d", "--name", "rd", "--net=rign", "--ip=172.16.86.20", "--ip6=2001:db8:86::20", dockerImage, "sleep", "1000")
	t.Cleanup(func() { x.d.docker("rm", "-f", "rd") })
	if code == 0 {
		x.endpoint(t, "rd")
	}
	close(stop)
	n := <-spammed
	if code != 0 {
		t.Fatalf("docker run failed with RAs from %s on the wire while it started (%d sent): %s", spam, n, errs)
	}
	t.Logf("%d RAs from %s while the container started", n, spam)
	dns := x.inspect(t, "rd", "{{.NetworkSettings.SandboxKey}}")
	ign, ok := x.mvlanNetwork(t, id)
	if !ok {
		t.Fatalf("mvlan has no network %s", id)
	}
	c := e.name("1")
	e.runD(c, ign.Name, "--ip=172.16.86.10", "--ip6=2001:db8:86::10")
	for _, ns := range []string{dns, c} {
		if got := conf(ns, "accept_ra"); got != "0" {
			t.Errorf("%s: accept_ra=%s, want 0 (ipv6_ra=ignore)", ns, got)
		}
	}

	rogue := addr("fe80::66")
	labels := map[string]string{"network": ign.Name, "reason": "ra_ignore"}
	before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
	sendFrames(t, sb.WirePath, "wire0", routerAdvert(t, nstest.MAC(t, "02:00:5e:00:53:66"), rogue, prefix), 3)
	text := e.waitCounter("mvlan_policy_drops_total", labels, before+6, nil)
	time.Sleep(300 * time.Millisecond) // had a kernel taken one, its route would be there by now
	tookNone(dns, "2001:db8:86::20", spam, rogue)
	tookNone(c, "2001:db8:86::10", spam, rogue)
	if got := counter(text, "mvlan_policy_drops_total", labels); got != before+6 {
		t.Errorf("mvlan_policy_drops_total%v moved by %d, want exactly 6 (3 RAs, 2 containers)", labels, got-before)
	}

	// ipv6_ra=accept: the gateway's RA only, and no address of its own.
	gateway, acceptPrefix := nstest.MAC(t, "02:00:5e:00:53:01"), netip.MustParsePrefix("2001:db8:87::/64")
	x.network(t, "--ipv6", "--subnet=172.16.87.0/24", "--subnet="+acceptPrefix.String(), "-o", "parent=eth1",
		"-o", "ipv6_ra=accept", "-o", "ipv6_ra_source=fe80::1,"+gateway.String(), "racc")
	x.runD(t, "ra", "--net=racc", "--ip=172.16.87.20", "--ip6=2001:db8:87::20")
	accNet := x.endpoint(t, "ra").Network
	ans := x.inspect(t, "ra", "{{.NetworkSettings.SandboxKey}}")
	if got := conf(ans, "accept_ra") + " " + conf(ans, "autoconf"); got != "1 0" {
		t.Errorf("%s: accept_ra autoconf = %s, want 1 0 (ipv6_ra=accept)", ans, got)
	}
	labels = map[string]string{"network": accNet, "reason": "ra_source"}
	before = counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
	sendFrames(t, sb.WirePath, "w-eth1", routerAdvert(t, nstest.MAC(t, "02:00:5e:00:53:66"), rogue, acceptPrefix), 3)
	sendFrames(t, sb.WirePath, "w-eth1", routerAdvert(t, gateway, addr("fe80::1"), acceptPrefix), 1)
	if !waitFor(5*time.Second, func() bool {
		return strings.Contains(e.in(ans, "ip", "-6", "route", "show", "default"), "via fe80::1 ")
	}) {
		t.Errorf("the gateway's RA gave %s no default route via fe80::1:\n%s", ans, e.in(ans, "ip", "-6", "route"))
	}
	text = e.waitCounter("mvlan_policy_drops_total", labels, before+3, nil)
	tookNone(ans, "2001:db8:87::20", rogue)
	if got := counter(text, "mvlan_policy_drops_total", labels); got != before+3 {
		t.Errorf("mvlan_policy_drops_total%v moved by %d, want exactly 3", labels, got-before)
	}
}

// routerAdvert is a router advertisement from mac and ll to ff02::1 with
// a default-router lifetime of 1800 s, a source link-layer option and
// prefix as an on-link and autonomous prefix (valid and preferred 1 h).
func routerAdvert(t *testing.T, mac net.HardwareAddr, ll netip.Addr, prefix netip.Prefix) []byte {
	body := append([]byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}, mac...)
	p := prefix.Addr().As16()
	body = append(append(body, 3, 4, byte(prefix.Bits()), 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10, 0, 0, 0, 0), p[:]...)
	return ipv6Frame(nstest.MAC(t, "33:33:00:00:00:01"), mac, ll, addr("ff02::1"), 58, body)
}
