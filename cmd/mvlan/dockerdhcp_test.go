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

// TestDockerDHCP: a Docker network with Docker's null IPAM driver
// (docker network create -d DRIVER --ipam-driver null) is a DHCP network:
// a container gets its address, prefix and router from the DHCP server
// on the wire (dnsmasq), leased by the agent inside the container's
// namespace once Docker moved the link there; docker rm releases the
// lease (gone from dnsmasq's file). Skipped without docker.io.
func TestDockerDHCP(t *testing.T) {
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
}
