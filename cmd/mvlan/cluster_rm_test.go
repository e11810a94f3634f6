package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestClusterNetworkRm: a cluster network defined on host1 is listed on
// host2 and host3 as not joined there (and inspect, rm, run there say so;
// rm -f passes over it). host2 joins, attaches, and
// leaves with network rm: the network is listed there as not joined
// again, and host2's block is back in the pool (host1 gets an address of
// it). With etcd frozen, rm of a cluster network is refused naming the
// cluster and network ls still answers within seconds. host1, the last
// member, removes it: the definition is gone from etcd (no host lists it,
// and host3 defines the name anew with another subnet).
func TestClusterNetworkRm(t *testing.T) {
	t.Parallel()
	hosts := clusterWire(t)
	etcd := nstest.StartEtcdIn(t, hosts[0].WirePath, "192.168.77.1")
	cp := hosts[0].Name + "-c"
	t.Cleanup(func() { removeNetns(cp) })
	var agents []*agentProc
	for _, h := range hosts {
		a := newAgent(t, h)
		a.flags = []string{"--cluster", etcd.URL}
		a.start()
		agents = append(agents, a)
	}
	ls := func(a *agentProc) string {
		return strings.TrimSpace(a.ok("network", "ls", "--format", "{{.Name}} {{.Scope}} {{.Status}}"))
	}
	h1, h2, h3 := agents[0], agents[1], agents[2]
	h1.ok("network", "create", "--scope", "cluster", "--subnet", "10.81.0.0/24", "-o", "parent=eth0", "cnet")
	if got := ls(h2); got != "cnet cluster not joined here" {
		t.Fatalf("host2's network ls: %q, want cnet as not joined here", got)
	}
	if got := ls(h1); got != "cnet cluster ok" {
		t.Fatalf("host1's network ls: %q, want cnet joined (ok)", got)
	}
	wantNotJoined(t, h2, "cnet", cp+"u")
	h1.ok("run", "-d", "--name", cp+"h1", "--net", "cnet") // host1: .0/28
	h2.ok("network", "create", "--scope", "cluster", "-o", "parent=eth0", "cnet")
	h2.ok("run", "-d", "--name", cp+"h2", "--net", "cnet") // host2: .16/28
	_, stderr, code := h1.mv("run", "-d", "--name", cp+"x", "--net", "cnet", "--ip", "10.81.0.20")
	if code == 0 || !strings.Contains(stderr, "10.81.0.16/28") {
		t.Fatalf("host1 got 10.81.0.20 in host2's block: exit %d %s", code, stderr)
	}
	h2.ok("rm", "-f", cp+"h2")
	h2.ok("network", "rm", "cnet")
	if got := ls(h2); got != "cnet cluster not joined here" {
		t.Fatalf("host2's network ls after rm: %q, want cnet as not joined here", got)
	}
	h1.ok("run", "-d", "--name", cp+"x", "--net", "cnet", "--ip", "10.81.0.20")

	h1.ok("rm", "-f", cp+"h1", cp+"x")
	h1.ok("network", "create", "--subnet", "10.82.0.0/24", "lnet")
	etcd.Stop()
	t0 := time.Now()
	_, stderr, code = h1.mv("network", "rm", "cnet")
	if code == 0 || !strings.Contains(stderr, "192.168.77.1:2379") {
		t.Errorf("network rm of a cluster network with etcd frozen: exit %d %q; want refused naming the cluster", code, stderr)
	}
	if got := ls(h1); !strings.Contains(got, "cnet cluster ok") || !strings.Contains(got, "lnet local ok") || time.Since(t0) > 8*time.Second {
		t.Errorf("host1's network ls with etcd frozen: %q after %v; want cnet and lnet, within seconds", got, time.Since(t0))
	}
	etcd.Cont()
	h1.ok("network", "rm", "cnet")
	for i, a := range agents {
		if got := ls(a); strings.Contains(got, "cnet") {
			t.Errorf("host%d lists %q after the last member removed cnet", i+1, got)
		}
	}
	h3.ok("network", "create", "--scope", "cluster", "--subnet", "10.83.0.0/24", "-o", "parent=eth0", "cnet")
}

// wantNotJoined: on a's host, where cluster network name is listed but
// not joined, network inspect, rm and run (as container c) fail saying
// it is not joined here and what would work; network rm -f passes over
// it in silence; it is still listed.
func wantNotJoined(t *testing.T, a *agentProc, name, c string) {
	t.Helper()
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"network", "inspect", name}, "join it first: mvlan network create --scope cluster"},
		{[]string{"network", "rm", name}, "nothing of it is here to remove"},
		{[]string{"run", "-d", "--name", c, "--net", name}, "join it first"},
	} {
		_, stderr, code := a.mv(tc.args...)
		if code != 1 || !strings.Contains(stderr, "network "+name+" is a cluster network this host has not joined") || !strings.Contains(stderr, tc.says) {
			t.Errorf("mvlan %q where %s is not joined: exit %d, %q; want 1 saying so and %q", tc.args, name, code, stderr, tc.says)
		}
	}
	if out, stderr, code := a.mv("network", "rm", "-f", name); code != 0 || out != "" || stderr != "" {
		t.Errorf("network rm -f %s where it is not joined: exit %d, out %q, stderr %q; want 0 and nothing", name, code, out, stderr)
	}
	if got := a.ok("network", "ls", "--format", "{{.Name}} {{.Status}}"); got != name+" not joined here\n" {
		t.Errorf("network ls after the refused rm: %q; want %s still listed as not joined here", got, name)
	}
}

// TestClusterTLS: agents reach a TLS etcd that requires client
// certificates, one with --cluster-ca/--cluster-cert/--cluster-key, one
// with MVLAN_CLUSTER_CA/_CERT/_KEY; both join one network and attach.
func TestClusterTLS(t *testing.T) {
	t.Parallel()
	hosts := clusterWire(t)
	etcd := nstest.StartEtcdInTLS(t, hosts[0].WirePath, "192.168.77.1")
	cp := hosts[0].Name + "-c"
	t.Cleanup(func() { removeNetns(cp) })
	a1, a2 := newAgent(t, hosts[0]), newAgent(t, hosts[1])
	a1.flags = []string{"--cluster", etcd.URL, "--cluster-ca", etcd.TLS.CA, "--cluster-cert", etcd.TLS.ClientCert, "--cluster-key", etcd.TLS.ClientKey}
	a1.start()
	a2.flags = []string{"--cluster", etcd.URL}
	a2.start("MVLAN_CLUSTER_CA="+etcd.TLS.CA, "MVLAN_CLUSTER_CERT="+etcd.TLS.ClientCert, "MVLAN_CLUSTER_KEY="+etcd.TLS.ClientKey)
	a1.ok("network", "create", "--scope", "cluster", "--subnet", "10.84.0.0/24", "-o", "parent=eth0", "tnet")
	a2.ok("network", "create", "--scope", "cluster", "-o", "parent=eth0", "tnet")
	a1.ok("run", "-d", "--name", cp+"1", "--net", "tnet")
	a2.ok("run", "-d", "--name", cp+"2", "--net", "tnet")
	e1, e2 := a1.endpoints(), a2.endpoints()
	if len(e1) != 1 || len(e2) != 1 || e1[0].Addrs[0] == e2[0].Addrs[0] {
		t.Fatalf("endpoints over TLS: %v and %v; want one each, distinct", e1, e2)
	}
}

// TestClusterDAD: an address of the pool that a machine outside mvlan
// has (10.85.0.2 on the wire's bridge) answers the attach's probe: a run
// without --ip is given the next address, one with --ip 10.85.0.2 fails
// naming it (as does one with another address that answers) and leaves
// its MAC free for another network, the conflicts are counted, and the
// drift check finds the set-aside address no drift.
func TestClusterDAD(t *testing.T) {
	hosts := clusterWire(t)
	etcd := nstest.StartEtcdIn(t, hosts[0].WirePath, "192.168.77.1")
	hosts[0].Run(t, hosts[0].WirePath, "ip", "addr", "add", "10.85.0.2/24", "dev", "br0")
	hosts[0].Run(t, hosts[0].WirePath, "ip", "addr", "add", "10.85.0.9/24", "dev", "br0")
	cp := hosts[0].Name + "-c"
	t.Cleanup(func() { removeNetns(cp) })
	a := newAgent(t, hosts[0])
	a.flags = []string{"--cluster", etcd.URL, "--metrics-addr", metricsAddr}
	a.start()
	a.ok("network", "create", "--scope", "cluster", "--subnet", "10.85.0.0/24", "-o", "parent=eth0", "dnet")
	a.ok("run", "-d", "--name", cp+"1", "--net", "dnet")
	if eps := a.endpoints(); len(eps) != 1 || eps[0].Addrs[0].Addr().String() != "10.85.0.3" {
		t.Fatalf("endpoints %v; want c1 on 10.85.0.3 (.2 answers on the wire)", eps)
	}
	const mac = "02:00:5e:10:00:04"
	for _, ip := range []string{"10.85.0.2", "10.85.0.9"} { // set aside; probed
		_, stderr, code := a.mv("run", "-d", "--name", cp+"2", "--net", "dnet", "--ip", ip, "--mac", mac)
		if code == 0 || !strings.Contains(stderr, ip) || !strings.Contains(stderr, "duplicate address detection") {
			t.Fatalf("--ip %s, which answers on the wire: exit %d %q; want refused naming it", ip, code, stderr)
		}
	}
	// The refused runs' MAC is free on the host again.
	hosts[0].AddVeth(t, "eth1")
	a.ok("network", "create", "--subnet", "10.86.0.0/24", "-o", "parent=eth1", "lnet")
	a.ok("run", "-d", "--name", cp+"3", "--net", "lnet", "--mac", mac)
	a.ok("run", "-d", "--name", cp+"2", "--net", "dnet", "--ip", "10.85.0.10")
	text := (&statsEnv{t: t, sb: hosts[0], a: a}).scrape()
	if v, ok := metricValue(text, "mvlan_cluster_dad_conflicts_total", nil); !ok || v != 2 {
		t.Errorf("mvlan_cluster_dad_conflicts_total = %v (%v), want 2", v, ok)
	}
	if d := drift(t, a); len(d) != 0 {
		t.Errorf("drift after DAD conflicts: %v", d)
	}
}
