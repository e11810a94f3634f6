package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// testDockerDHCP (TestDockerd/DockerDHCP): a Docker network with Docker's null IPAM driver
// (docker network create -d DRIVER --ipam-driver null) is a DHCP network:
// a container gets its address, prefix and router from the DHCP server
// on the wire (dnsmasq), leased by the agent inside the container's
// namespace once Docker moved the link there; docker rm releases the
// lease (gone from dnsmasq's file). A container started while no server
// answers runs without an address and gets one once the server answers,
// also across an agent restart. Skipped without docker.io.
func testDockerDHCP(t *testing.T) {
	daemon, cli, busybox := dockerTools(t)
	sb := nstest.NewSandbox(t)
	peer := sb.AddVeth(t, "eth1")
	srv := startDnsmasq(t, sb, peer)
	driver := randName("mvt-")
	sock := filepath.Join("/run/docker/plugins", driver+".sock")
	t.Cleanup(func() { _ = os.Remove(sock) }) // the agent removes it; this after a kill
	a := newAgent(t, sb)
	srv.agent = a
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock}
	a.start()
	d := startDockerd(t, sb, daemon, cli)
	d.importBusybox(busybox)
	x := &dockerTest{a: a, d: d, driver: driver}
	id := x.ok(t, "network", "create", "-d", driver, "--ipam-driver", "null", "-o", "parent=eth0", "dlan")
	t.Cleanup(func() { x.d.docker("network", "rm", "dlan") })
	if got := strings.TrimSpace(a.ok("network", "inspect", "-f", "{{.IPAM.Driver}}", id)); got != "dhcp" {
		t.Fatalf("mvlan network inspect dlan: IPAM driver %q, want dhcp", got)
	}
	x.runD(t, "dc1", "--net", "dlan")
	var ep api.Endpoint
	for deadline := time.Now().Add(15 * time.Second); ep.Lease == nil; time.Sleep(100 * time.Millisecond) {
		ep = x.endpoint(t, "dc1")
		if time.Now().After(deadline) {
			t.Fatalf("dc1 has no lease 15 s after docker run:\n%s\n%s", a.log, d.logTail())
		}
	}
	addr := addrOf(ep, false)
	p, err := netip.ParsePrefix(addr)
	if err != nil || p.Bits() != 24 || p.Addr().Compare(netip.MustParseAddr("192.168.60.100")) < 0 || p.Addr().Compare(netip.MustParseAddr("192.168.60.150")) > 0 {
		t.Fatalf("dc1 got %q, want an address of dnsmasq's range 192.168.60.100-150/24", addr)
	}
	mustContain(t, "docker exec dc1 ip addr", x.ok(t, "exec", "dc1", "ip", "-4", "addr", "show", "dev", "eth0"), addr)
	mustContain(t, "docker exec dc1 ip route", x.ok(t, "exec", "dc1", "ip", "route"), "default via 192.168.60.1 dev eth0")
	srv.waitLease(ep.MAC, time.Second, "dc1's lease in dnsmasq", func(l lease, ok bool) bool { return ok && l.addr == p.Addr() })
	x.ok(t, "exec", "dc1", "ping", "-c", "2", "-W", "2", "192.168.60.1")
	x.ok(t, "rm", "-f", "dc1")
	srv.waitLease(ep.MAC, 5*time.Second, "DHCPRELEASE on docker rm", func(_ lease, ok bool) bool { return !ok })

	// No server: the container runs without an address (logged); after an
	// agent restart, once the server answers, it gets one.
	srv.Stop()
	x.runD(t, "dc2", "--net", "dlan")
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(a.log.String(), `msg="Docker endpoint has no address"`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no server: the agent did not log that dc2 has no address:\n%s", a.log)
		}
	}
	a.kill()
	a.start()
	srv.Start()
	for deadline, ep := time.Now().Add(20*time.Second), (api.Endpoint{}); ep.Lease == nil; time.Sleep(200 * time.Millisecond) {
		ep = x.endpoint(t, "dc2")
		if time.Now().After(deadline) {
			t.Fatalf("dc2 has no lease 20 s after the server came back:\n%s", a.log)
		}
	}
	ep = x.endpoint(t, "dc2")
	mustContain(t, "docker exec dc2 ip addr", x.ok(t, "exec", "dc2", "ip", "-4", "addr", "show", "dev", "eth0"), addrOf(ep, false))
	mustContain(t, "agent log", a.log.String(), `msg="DHCP lease" name=`+ep.Name)
	// Now: the agent of the restart is killed before Docker's cleanup
	// (which then waits for the plugin, ~40 s).
	x.ok(t, "rm", "-f", "dc2")
	x.ok(t, "network", "rm", "dlan")
}
