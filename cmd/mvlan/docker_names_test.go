package main

// Docker's container and network names in mvlan: the agent asks dockerd's
// Engine API (--docker-host) which container holds a Docker endpoint and
// names the endpoint after it, after Join and on start; and it asks for
// the name of each Docker network made without -o name= (named by its
// short ID until then), after create, Join and on start. Skipped without
// docker.io and busybox-static.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

func testDockerNames(t *testing.T) {
	daemon, cli, busybox := dockerTools(t)
	sb := nstest.NewSandbox(t)
	driver := randName("mvt-")
	sock := filepath.Join("/run/docker/plugins", driver+".sock")
	t.Cleanup(func() { _ = os.Remove(sock) })
	sb.AddVeth(t, "eth1")
	sb.AddVeth(t, "eth2")
	sb.AddVeth(t, "eth3")
	d := startDockerd(t, sb, daemon, cli)
	d.importBusybox(busybox)
	// First without dockerd's API: the endpoint is named by its sandbox
	// key, the network by its short ID.
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock, "MVLAN_DOCKER_HOST="}
	a.flags = []string{"--metrics-addr", metricsAddr}
	a.start()
	x := &dockerTest{a: a, d: d, driver: driver}
	metrics := &statsEnv{sb: sb, a: a}
	t.Run("Names", func(t *testing.T) {
		metrics.t = t
		id := x.network(t, "--subnet=172.16.87.0/24", "-o", "parent=eth0", "names_net")
		x.runD(t, "web0", "--net", "names_net")
		ep := x.endpoint(t, "web0")
		if ep.Name != filepath.Base(ep.Netns) {
			t.Fatalf("without --docker-host: endpoint name %q, want its sandbox key %q", ep.Name, filepath.Base(ep.Netns))
		}
		x.wantNetName(t, id, id[:12])
		mustContain(t, "/metrics without --docker-host", metrics.scrape(), `mvlan_endpoints{network="`+id[:12]+`"} 1`)
		// The agent's start names the endpoints still named by their key
		// and the networks by their ID.
		a.stop()
		a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock, "MVLAN_DOCKER_HOST=unix://" + d.sock}
		a.start()
		x.wantNamed(t, "web0", ep.Netns)
		x.wantNetName(t, id, "names_net")
		// A new container is named after Join.
		t0 := time.Now()
		x.runD(t, "web1", "--net", "names_net")
		key := x.inspect(t, "web1", "{{.NetworkSettings.SandboxKey}}")
		x.wantNamed(t, "web1", key)
		t.Logf("web1 named %v after docker run started", time.Since(t0).Round(time.Millisecond))
		mustContain(t, "mvlan ps", a.ok("ps"), "web0", "web1")
		x.wantNetNameUsed(t, metrics, id, "names_net", 2)
		// Leave and DeleteEndpoint find the renamed endpoints.
		x.ok(t, "rm", "-f", "web0", "web1")
		if !x.waitFor(t, func() bool { return len(x.ps(t)) == 0 }) {
			t.Errorf("mvlan ps after docker rm: %+v, want none", x.ps(t))
		}
	})
	t.Run("NetworkNames", func(t *testing.T) {
		metrics.t = t
		// Named soon after docker network create.
		t0 := time.Now()
		id := x.network(t, "--subnet=172.16.88.0/24", "-o", "parent=eth1", "live_net")
		x.wantNetName(t, id, "live_net")
		t.Logf("live_net named %v after docker network create started", time.Since(t0).Round(time.Millisecond))
		// -o name= is the operator's and stays.
		given := x.network(t, "--subnet=172.16.89.0/24", "-o", "parent=eth2", "-o", "name=given_net", "docker_given")
		// dockerd's name is another mvlan network's: the ID stays, the log says why.
		a.ok("network", "create", "--subnet=172.16.90.0/24", "-o", "parent=eth3", "clash_net")
		t.Cleanup(func() { a.mv("network", "rm", "clash_net") })
		clash := x.network(t, "--subnet=172.16.91.0/24", "clash_net")
		why := "dockerd's name for it is another mvlan network's"
		if !x.waitFor(t, func() bool { return strings.Contains(a.log.String(), why) }) {
			t.Errorf("agent log does not say why Docker's clash_net keeps its ID (%q)", why)
		}
		x.wantNetName(t, clash, clash[:12])
		x.wantNetName(t, given, "given_net")
		x.runD(t, "live0", "--net", "live_net")
		x.wantNetNameUsed(t, metrics, id, "live_net", 1)
	})
	if t.Failed() {
		t.Logf("agent log:\n%s\n%s", a.log, d.logTail())
	}
}

// wantNetName waits (up to 15 s) until mvlan network ls lists network id
// under name.
func (x *dockerTest) wantNetName(t *testing.T, id, name string) {
	t.Helper()
	var n api.Network
	if !x.waitFor(t, func() bool { n, _ = x.mvlanNetwork(t, id); return n.Name == name }) {
		t.Fatalf("mvlan network ls lists network %s as %q after 15s, want %q", id[:12], n.Name, name)
	}
	mustContain(t, "mvlan network ls", x.a.ok("network", "ls"), name)
}

// wantNetNameUsed checks that mvlan ps, mvlan stats and /metrics call
// network id by name (with its endpoints) and never by its short ID.
func (x *dockerTest) wantNetNameUsed(t *testing.T, metrics *statsEnv, id, name string, endpoints int) {
	t.Helper()
	x.netStats(t, name)
	for _, e := range x.ps(t) {
		if e.NetworkID == id && e.Network != name {
			t.Errorf("mvlan ps: endpoint %s on network %q, want %q", e.Name, e.Network, name)
		}
	}
	text := metrics.scrape()
	mustContain(t, "/metrics", text, fmt.Sprintf(`mvlan_endpoints{network=%q} %d`, name, endpoints),
		fmt.Sprintf(`mvlan_network_rx_packets_total{network=%q}`, name))
	if old := fmt.Sprintf(`network=%q`, id[:12]); strings.Contains(text, old) {
		t.Errorf("/metrics still has series with %s:\n%s", old, grepLines(text, old))
	}
	if old := `"` + id[:12] + `"`; strings.Contains(x.a.ok("stats", "--format", "json"), old) {
		t.Errorf("mvlan stats still names %s", old)
	}
}

// wantNamed waits (up to 15 s) until mvlan ps lists the endpoint in the
// sandbox key under the container's name.
func (x *dockerTest) wantNamed(t *testing.T, name, key string) {
	t.Helper()
	ok := x.waitFor(t, func() bool {
		for _, e := range x.ps(t) {
			if e.Netns == key && e.Name == name {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Errorf("mvlan ps has no endpoint %s in %s after 15s: %+v", name, key, x.ps(t))
	}
}
