package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestClusterReclaim: three agents (liveness TTL 2 s, grace 3 s) on one
// cluster network, each holding one block. host2's agent is SIGKILLed
// with its endpoints left running; host3's is SIGKILLed and its
// endpoints' namespaces deleted. Before TTL + grace host3's block is
// still refused to host1; after it, host3's block is given back (its
// addresses answer no ARP probe) and host1 gets an address in it, while
// host2's block, whose endpoints answer, stays host2's. Restarted, host2
// keeps its block; host3 has lost its block, and what it hands out
// collides with nothing, also after all three are killed at once and
// started again. promtool finds host1's cluster metrics clean.
func TestClusterReclaim(t *testing.T) {
	t.Parallel()
	hosts := clusterWire(t)
	etcd := nstest.StartEtcdIn(t, hosts[0].WirePath, "192.168.77.1")
	cp := hosts[0].Name + "-c"
	t.Cleanup(func() { removeNetns(cp) })
	var agents []*agentProc
	for _, h := range hosts {
		a := newAgent(t, h)
		a.flags = []string{"--cluster", etcd.URL, "--metrics-addr", metricsAddr, "--cluster-ttl", "2s", "--cluster-grace", "3s"}
		a.start()
		agents = append(agents, a)
	}
	agents[0].ok("network", "create", "--scope", "cluster", "--subnet", "10.79.0.0/24", "-o", "parent=eth0", "rnet")
	for _, a := range agents[1:] {
		a.ok("network", "create", "--scope", "cluster", "-o", "parent=eth0", "rnet")
	}
	// host3 leases .0/28 (.1 is the gateway), host2 .16/28, host1 .32/28.
	for i := 2; i >= 0; i-- {
		for j := range 2 {
			agents[i].ok("run", "-d", "--name", fmt.Sprintf("%sh%d-%d", cp, i+1, j), "--net", "rnet")
		}
	}
	id3 := agentID(t, agents[2])
	h2addr := mustAddr(t, agents[1], cp+"h2-0")
	agents[1].kill()
	agents[2].kill()
	for j := range 2 {
		if out, err := exec.Command("ip", "netns", "del", fmt.Sprintf("%sh3-%d", cp, j)).CombinedOutput(); err != nil {
			t.Fatalf("ip netns del: %v %s", err, out)
		}
	}
	killed := time.Now()
	a := agents[0]
	_, stderr, code := a.mv("run", "-d", "--name", cp+"take", "--net", "rnet", "--ip", "10.79.0.2")
	if code == 0 || !strings.Contains(stderr, id3) {
		t.Fatalf("host1 got host3's 10.79.0.2 at once: exit %d %s", code, stderr)
	}
	for {
		_, stderr, code = a.mv("run", "-d", "--name", cp+"take", "--net", "rnet", "--ip", "10.79.0.2")
		if code == 0 {
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("host3's block not reclaimed 20 s after its agent died: %s\nagent log:\n%s", stderr, a.log)
		}
		time.Sleep(250 * time.Millisecond)
	}
	took := time.Since(killed)
	// Its lease was renewed up to TTL/3 before the kill: expiry >= 1.33 s
	// after it, then the grace of 3 s.
	if took < 4300*time.Millisecond {
		t.Fatalf("host3's block was reclaimed %v after its agent died, before (TTL 2 s - TTL/3) + grace 3 s", took)
	}
	t.Logf("host3's block reclaimed and 10.79.0.2 reused %v after its agent was killed", took)
	time.Sleep(2 * time.Second) // two more reclaim rounds (every TTL/2) for host2's block
	_, stderr, code = a.mv("run", "-d", "--name", cp+"take2", "--net", "rnet", "--ip", "10.79.0.30")
	if code == 0 || !strings.Contains(stderr, "10.79.0.16/28") {
		t.Fatalf("host1 got 10.79.0.30 in host2's block while host2's endpoints answer: exit %d %s", code, stderr)
	}
	if err := nstest.Ping(filepath.Join("/run/netns", cp+"take"), h2addr, 1, 2*time.Second); err != nil {
		t.Errorf("host1's new endpoint cannot reach host2's: %v", err)
	}
	text := (&statsEnv{t: t, sb: hosts[0], a: a}).scrape()
	// Exactly one block was reclaimed, host3's; the refusals (host3's
	// block before its grace, host2's in every round) and the etcd
	// transactions depend on the rounds' timing.
	if v, ok := metricValue(text, "mvlan_cluster_reclaimed_total", map[string]string{"kind": "block"}); !ok || v != 1 {
		t.Errorf(`host1's mvlan_cluster_reclaimed_total{kind="block"} = %v (%v), want 1 (host3's block only)`, v, ok)
	}
	for name, want := range map[string]map[string]string{
		"mvlan_cluster_reclaim_refused_total":               {"kind": "block"},
		"mvlan_cluster_etcd_request_duration_seconds_count": {"op": "txn"},
	} {
		if v, ok := metricValue(text, name, want); !ok || v < 1 {
			t.Errorf("host1's %s%v = %v (%v), want >= 1", name, want, v, ok)
		}
	}
	promtoolCheck(t, text)

	// Back: host2 keeps its block, host3 lost its own.
	agents[1].start()
	agents[1].ok("run", "-d", "--name", cp+"h2-back", "--net", "rnet", "--ip", "10.79.0.30")
	agents[2].start()
	agents[2].ok("run", "-d", "--name", cp+"h3-back", "--net", "rnet")
	seen := map[string]string{}
	for i, ag := range agents {
		for _, e := range ag.endpoints() {
			for _, pf := range e.Addrs {
				if o, dup := seen[pf.Addr().String()]; dup {
					t.Errorf("%s on %s and host%d's %s", pf.Addr(), o, i+1, e.Name)
				}
				seen[pf.Addr().String()] = fmt.Sprintf("host%d's %s", i+1, e.Name)
			}
		}
	}
	if !strings.Contains(agents[2].log.String(), "reclaimed while it was away") {
		t.Errorf("host3 did not report its lost block:\n%s", agents[2].log)
	}
	// All three down at once (SIGKILL), then back: each attaches again,
	// still no duplicate.
	for _, ag := range agents {
		ag.kill()
	}
	t1 := time.Now()
	for _, ag := range agents {
		ag.start()
	}
	t.Logf("all three restarted in %v", time.Since(t1))
	for i, ag := range agents {
		ag.ok("run", "-d", "--name", fmt.Sprintf("%sall%d", cp, i), "--net", "rnet")
	}
	t.Logf("and attached in %v", time.Since(t1))
	seen = map[string]string{}
	for i, ag := range agents {
		for _, e := range ag.endpoints() {
			for _, pf := range e.Addrs {
				if o, dup := seen[pf.Addr().String()]; dup {
					t.Errorf("after restarting all: %s on %s and host%d's %s", pf.Addr(), o, i+1, e.Name)
				}
				seen[pf.Addr().String()] = fmt.Sprintf("host%d's %s", i+1, e.Name)
			}
		}
	}
}

// removeNetns unmounts and removes /run/netns/PREFIX*.
func removeNetns(prefix string) {
	left, _ := filepath.Glob(filepath.Join("/run/netns", prefix+"*"))
	for _, p := range left {
		_ = unix.Unmount(p, unix.MNT_DETACH)
		_ = os.Remove(p)
	}
}

// mustAddr is the first address of endpoint name on a's host.
func mustAddr(t *testing.T, a *agentProc, name string) netip.Addr {
	t.Helper()
	for _, e := range a.endpoints() {
		if e.Name == name && len(e.Addrs) > 0 {
			return e.Addrs[0].Addr()
		}
	}
	t.Fatalf("no endpoint %s with an address", name)
	return netip.Addr{}
}

// promtoolCheck runs promtool check metrics on an exposition.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: not checked")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
