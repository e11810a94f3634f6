package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// clusterWire makes three hosts whose eth0 are on one wire (a bridge in
// the sandbox's wire namespace, which also has 192.168.77.1), each with
// 192.168.77.1N on eth0 to reach etcd there.
func clusterWire(t *testing.T) []*nstest.Sandbox {
	sb := nstest.NewSandbox(t)
	w := sb.WirePath
	sb.Run(t, w, "ip", "link", "add", "br0", "type", "bridge")
	sb.Run(t, w, "ip", "link", "set", "wire0", "master", "br0")
	sb.Run(t, w, "ip", "addr", "add", "192.168.77.1/24", "dev", "br0")
	sb.Run(t, w, "ip", "link", "set", "br0", "up")
	hosts := []*nstest.Sandbox{sb}
	for i := 2; i <= 3; i++ {
		name := fmt.Sprintf("h%d", i)
		h := &nstest.Sandbox{Name: sb.Name + "-" + name, Path: sb.Netns(t, name), WireName: sb.WireName, WirePath: w}
		sb.Run(t, w, "ip", "link", "add", "w-"+name, "type", "veth", "peer", "name", "eth0", "netns", h.Name)
		sb.Run(t, w, "ip", "link", "set", "w-"+name, "master", "br0", "up")
		sb.Run(t, h.Path, "ip", "link", "set", "lo", "up")
		sb.Run(t, h.Path, "ip", "link", "set", "eth0", "up")
		hosts = append(hosts, h)
	}
	for i, h := range hosts {
		sb.Run(t, h.Path, "ip", "addr", "add", fmt.Sprintf("192.168.77.1%d/24", i+1), "dev", "eth0")
	}
	return hosts
}

// poolExhausted: on a cluster network of two pools whose ranges are one
// block of two addresses each (on eth1, each host's link to a second
// wire), host1's third attach, pool A full, takes pool B's block and is
// not counted; its fifth and host2's first fail saying the network has no
// free address, and each host's mvlan_cluster_pool_exhausted_total counts
// its one refusal.
func poolExhausted(t *testing.T, hosts []*nstest.Sandbox, agents []*agentProc, cp string) {
	t.Helper()
	// A wire of their own (br1): a port added to br0 could lower its MAC
	// (a bridge takes its ports' lowest) under the hosts' ARP entries for
	// etcd's address there.
	hosts[0].Run(t, hosts[0].WirePath, "ip", "link", "add", "br1", "type", "bridge")
	hosts[0].Run(t, hosts[0].WirePath, "ip", "link", "set", "br1", "up")
	for i, h := range hosts {
		peer := fmt.Sprintf("w1-%d", i+1)
		h.Run(t, h.WirePath, "ip", "link", "add", peer, "type", "veth", "peer", "name", "eth1", "netns", h.Name)
		h.Run(t, h.WirePath, "ip", "link", "set", peer, "master", "br1", "up")
		h.Run(t, h.Path, "ip", "link", "set", "eth1", "up")
	}
	agents[0].ok("network", "create", "--scope", "cluster", "--subnet", "10.79.0.0/24", "--ip-range", "10.79.0.4/31",
		"--subnet", "10.80.0.0/24", "--ip-range", "10.80.0.4/31", "-o", "parent=eth1", "ctiny")
	agents[1].ok("network", "create", "--scope", "cluster", "-o", "parent=eth1", "ctiny")
	exhausted := func(i int) float64 {
		text := (&statsEnv{t: t, sb: hosts[i], a: agents[i]}).scrape()
		n, ok := metricValue(text, "mvlan_cluster_pool_exhausted_total", map[string]string{"network": "ctiny"})
		if !ok {
			t.Fatalf("host%d: no mvlan_cluster_pool_exhausted_total{network=ctiny}", i+1)
		}
		return n
	}
	for j := 1; j <= 4; j++ {
		agents[0].ok("run", "-d", "--name", fmt.Sprintf("%stiny%d", cp, j), "--net", "ctiny")
		if j == 3 && exhausted(0) != 0 {
			t.Errorf("host1: the third attach took pool B's block, but mvlan_cluster_pool_exhausted_total is %v; want 0", exhausted(0))
		}
	}
	for i, name := range []string{cp + "tiny5", cp + "tiny6"} {
		if _, stderr, code := agents[i].mv("run", "-d", "--name", name, "--net", "ctiny"); code == 0 || !strings.Contains(stderr, "network ctiny: no free address in 10.80.0.4/31") {
			t.Errorf("host%d: run on the full ctiny: exit %d: %s; want a failure saying ctiny has no free address", i+1, code, stderr)
		}
		if n := exhausted(i); n != 1 {
			t.Errorf("host%d: mvlan_cluster_pool_exhausted_total{network=ctiny} %v after one refused attach, want 1", i+1, n)
		}
	}
	agents[0].ok("rm", "-f", cp+"tiny1", cp+"tiny2", cp+"tiny3", cp+"tiny4")
	for _, a := range agents {
		a.ok("network", "rm", "ctiny")
	}
}

// TestCluster: three agents on three hosts join one etcd; a network of
// scope cluster defined on the first is joined by the others with their
// own parent; parallel attaches on all three get distinct addresses, and
// every endpoint pings one on each other host. With etcd frozen
// (SIGSTOP) an agent restarts, the endpoints go on pinging, an attach takes an address of a
// block its host holds, an exact address outside them fails naming the
// cluster, local networks work; after SIGCONT the exact address is
// granted, and once its endpoint is removed another host gets it; after
// etcd is killed and restarted, claims hold and attaches go on.
func TestCluster(t *testing.T) {
	t.Parallel()
	hosts := clusterWire(t)
	etcd := nstest.StartEtcdIn(t, hosts[0].WirePath, "192.168.77.1")
	cp := hosts[0].Name + "-c" // every container's name, and its /run/netns entry
	t.Cleanup(func() {         // after the agents are killed (cleanups run last first)
		left, _ := filepath.Glob(filepath.Join("/run/netns", cp+"*"))
		for _, p := range left {
			_ = unix.Unmount(p, unix.MNT_DETACH)
			_ = os.Remove(p)
		}
	})
	var agents []*agentProc
	for _, h := range hosts {
		a := newAgent(t, h)
		a.flags = []string{"--cluster", etcd.URL, "--metrics-addr", metricsAddr}
		a.start()
		agents = append(agents, a)
	}
	agents[0].ok("network", "create", "--scope", "cluster", "--subnet", "10.77.0.0/24", "-o", "parent=eth0", "cnet")
	for _, a := range agents[1:] {
		a.ok("network", "create", "--scope", "cluster", "-o", "parent=eth0", "cnet")
	}
	want := strings.TrimSpace(agents[0].ok("network", "ls", "--format", "{{.ID}} {{.Scope}} {{(index .IPAM.Config 0).Subnet}}"))
	for i, a := range agents {
		if got := strings.TrimSpace(a.ok("network", "ls", "--format", "{{.ID}} {{.Scope}} {{(index .IPAM.Config 0).Subnet}}")); got != want || !strings.Contains(got, " cluster 10.77.0.0/24") {
			t.Fatalf("host%d: network ls says %q, host1 %q; want one cluster network 10.77.0.0/24", i+1, got, want)
		}
	}

	const per = 34
	var wg sync.WaitGroup
	errs := make(chan string, 3*per)
	t0 := time.Now()
	for i, a := range agents {
		for j := range per {
			wg.Go(func() {
				name := fmt.Sprintf("%sh%d-%d", cp, i+1, j)
				if _, stderr, code := a.mv("run", "-d", "--name", name, "--net", "cnet"); code != 0 {
					errs <- fmt.Sprintf("host%d run %s: exit %d: %s", i+1, name, code, stderr)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	byHost := make([][]api.Endpoint, len(agents))
	owner := map[netip.Addr]string{}
	for i, a := range agents {
		byHost[i] = a.endpoints()
		if len(byHost[i]) != per {
			t.Fatalf("host%d has %d endpoints, want %d", i+1, len(byHost[i]), per)
		}
		for _, e := range byHost[i] {
			if len(e.Addrs) != 1 || !netip.MustParsePrefix("10.77.0.0/24").Contains(e.Addrs[0].Addr()) {
				t.Fatalf("host%d: %s has %v, want one address of 10.77.0.0/24", i+1, e.Name, e.Addrs)
			}
			if o, dup := owner[e.Addrs[0].Addr()]; dup {
				t.Errorf("%s given to %s and %s", e.Addrs[0], o, e.Name)
			}
			owner[e.Addrs[0].Addr()] = e.Name
		}
	}
	t.Logf("%d attaches on 3 hosts in %v, %d distinct addresses", 3*per, time.Since(t0), len(owner))
	text := (&statsEnv{t: t, sb: hosts[0], a: agents[0]}).scrape()
	blocks, ok := metricValue(text, "mvlan_cluster_blocks", map[string]string{"network": "cnet"})
	used, ok2 := metricValue(text, "mvlan_ipam_addresses", map[string]string{"network": "cnet", "state": "used"})
	if !ok || !ok2 || blocks != 3 || used != per { // 34 addresses: 3 blocks of 14 and 16
		t.Errorf("host1's metrics: mvlan_cluster_blocks %v (%v), used %v (%v); want 3 blocks, %d used", blocks, ok, used, ok2, per)
	}
	crossPing(t, byHost)
	poolExhausted(t, hosts[:2], agents[:2], cp)

	etcd.Stop()
	stopped := true
	defer func() {
		if stopped {
			etcd.Cont()
		}
	}()
	agents[1].stop() // a restart needs etcd for nothing its endpoints hold
	agents[1].start()
	crossPing(t, byHost) // running endpoints are untouched
	agents[1].ok("run", "-d", "--name", cp+"h2late", "--net", "cnet")
	a := agents[0]
	name := cp + "late"
	a.ok("run", "-d", "--name", name, "--net", "cnet") // 34 of 42 held: a held block has room
	_, stderr, code := a.mv("run", "-d", "--name", name+"x", "--net", "cnet", "--ip", "10.77.0.250")
	if code == 0 || !strings.Contains(stderr, "192.168.77.1:2379") {
		t.Fatalf("--ip outside the held blocks with etcd stopped: exit %d %q; want a failure naming the cluster", code, stderr)
	}
	t.Logf("with etcd stopped: %s", strings.TrimSpace(stderr))
	a.ok("network", "create", "--subnet", "10.78.0.0/24", "lnet")
	a.ok("run", "-d", "--name", cp+"local", "--net", "lnet")
	etcd.Cont()
	stopped = false
	a.ok("run", "-d", "--name", name+"x", "--net", "cnet", "--ip", "10.77.0.250")
	for _, e := range a.endpoints() {
		if e.Name == name+"x" && (len(e.Addrs) != 1 || e.Addrs[0].Addr() != netip.MustParseAddr("10.77.0.250")) {
			t.Fatalf("after SIGCONT, %s has %v; want 10.77.0.250", e.Name, e.Addrs)
		}
	}
	// Removed, the exact address goes back to etcd by itself: another
	// host gets it.
	other := cp + "h3x"
	if _, stderr, code := agents[2].mv("run", "-d", "--name", other, "--net", "cnet", "--ip", "10.77.0.250"); code == 0 || !strings.Contains(stderr, "10.77.0.250") {
		t.Fatalf("host3 got 10.77.0.250 while host1's %s has it: exit %d %s", name+"x", code, stderr)
	}
	a.ok("rm", "-f", name+"x")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, stderr, code := agents[2].mv("run", "-d", "--name", other, "--net", "cnet", "--ip", "10.77.0.250")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host3 still cannot have 10.77.0.250 10 s after host1 removed %s: %s", name+"x", stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// etcd killed and started again on its data: the claims and blocks
	// are still there, attaches go on.
	etcd.Restart(t)
	if _, stderr, code := a.mv("run", "-d", "--name", name+"y", "--net", "cnet", "--ip", "10.77.0.250"); code == 0 || !strings.Contains(stderr, "10.77.0.250") {
		t.Fatalf("after an etcd restart host1 got host3's 10.77.0.250: exit %d %s", code, stderr)
	}
	agents[1].ok("run", "-d", "--name", cp+"h2y", "--net", "cnet", "--ip", "10.77.0.251")
	for i := range 20 { // past the blocks host1 holds: a lease after the restart
		a.ok("run", "-d", "--name", fmt.Sprintf("%sh1y%d", cp, i), "--net", "cnet")
	}
}

// crossPing: every endpoint pings the first endpoint of each other host.
func crossPing(t *testing.T, byHost [][]api.Endpoint) {
	t.Helper()
	for i, eps := range byHost {
		for _, e := range eps {
			for j, other := range byHost {
				if j == i {
					continue
				}
				dst := other[0].Addrs[0].Addr()
				if err := nstest.Ping(e.Netns, dst, 1, 2*time.Second); err != nil {
					t.Errorf("host%d %s -> host%d %s: %v", i+1, e.Name, j+1, dst, err)
				}
			}
		}
	}
}
