package main

// Docker's container names in mvlan ps: the agent asks dockerd's Engine
// API (--docker-host) which container holds a Docker endpoint and names
// the endpoint after it, after Join and on start. Skipped without
// docker.io and busybox-static.

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

func TestDockerNames(t *testing.T) {
	daemon, cli, busybox := dockerTools(t)
	sb := nstest.NewSandbox(t)
	driver := randName("mvt-")
	sock := filepath.Join("/run/docker/plugins", driver+".sock")
	t.Cleanup(func() { _ = os.Remove(sock) })
	d := startDockerd(t, sb, daemon, cli)
	d.importBusybox(busybox)
	// First without dockerd's API: the endpoint is named by its sandbox key.
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock, "MVLAN_DOCKER_HOST="}
	a.start()
	x := &dockerTest{a: a, d: d, driver: driver}
	t.Run("Names", func(t *testing.T) {
		x.network(t, "--subnet=172.16.87.0/24", "-o", "parent=eth0", "names_net")
		x.runD(t, "web0", "--net", "names_net")
		ep := x.endpoint(t, "web0")
		if ep.Name != filepath.Base(ep.Netns) {
			t.Fatalf("without --docker-host: endpoint name %q, want its sandbox key %q", ep.Name, filepath.Base(ep.Netns))
		}
		// The agent's start names the endpoints still named by their key.
		a.stop()
		a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock, "MVLAN_DOCKER_HOST=unix://" + d.sock}
		a.start()
		x.wantNamed(t, "web0", ep.Netns)
		// A new container is named after Join.
		t0 := time.Now()
		x.runD(t, "web1", "--net", "names_net")
		key := x.inspect(t, "web1", "{{.NetworkSettings.SandboxKey}}")
		x.wantNamed(t, "web1", key)
		t.Logf("web1 named %v after docker run started", time.Since(t0).Round(time.Millisecond))
		mustContain(t, "mvlan ps", a.ok("ps"), "web0", "web1")
		// Leave and DeleteEndpoint find the renamed endpoints.
		x.ok(t, "rm", "-f", "web0", "web1")
		if !x.waitFor(t, func() bool { return len(x.ps(t)) == 0 }) {
			t.Errorf("mvlan ps after docker rm: %+v, want none", x.ps(t))
		}
	})
	if t.Failed() {
		t.Logf("agent log:\n%s\n%s", a.log, d.logTail())
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
