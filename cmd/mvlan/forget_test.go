package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestNetworkRmForgetsParentCounters: after network rm, the parent's
// per-VLAN counters are gone from mvlan stats and /metrics (and from the
// map, whose room a full trunk needs), while another network's stay. A
// scrape before the rm fills the buffers the agent keeps between scrapes:
// nothing of it may stay.
func TestNetworkRmForgetsParentCounters(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	startWith(e.a, "--metrics-addr", metricsAddr)
	t.Cleanup(e.cleanup)
	v := &statsEnv{t: t, sb: sb, a: e.a}
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "net0")
	e.a.ok("network", "create", "--subnet=172.16.90.0/24", "-o", "parent=eth1", "net1")
	for _, c := range []struct{ name, net, ip string }{{"a", "net0", "172.16.86.10"}, {"b", "net0", "172.16.86.11"},
		{"c", "net1", "172.16.90.10"}, {"d", "net1", "172.16.90.11"}} {
		e.runD(e.name(c.name), c.net, "--ip="+c.ip)
	}
	for _, p := range []struct{ from, to string }{{"a", "172.16.86.11"}, {"c", "172.16.90.11"}} {
		out, err := e.pingFrom(e.name(p.from), p.to, false)
		e.wantPingOK("ping "+p.to, out, exitOf(err))
	}
	parents := func() map[string]bool {
		var st api.Stats
		if err := json.Unmarshal([]byte(e.a.ok("stats", "--format", "json")), &st); err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, v := range st.VLANs {
			m[v.Parent] = true
		}
		return m
	}
	scraped := func() map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(v.scrape(), "\n") {
			if rest, ok := strings.CutPrefix(l, `mvlan_vlan_rx_packets_total{parent="`); ok {
				parent, _, _ := strings.Cut(rest, `"`)
				m[parent] = true
			}
		}
		return m
	}
	if p := parents(); !p["eth0"] || !p["eth1"] {
		t.Fatalf("stats before rm lack a parent: %v", p)
	}
	if p := scraped(); !p["eth0"] || !p["eth1"] {
		t.Fatalf("/metrics before rm lacks a parent: %v", p)
	}
	e.a.ok("rm", "-f", e.name("c"), e.name("d"))
	e.a.ok("network", "rm", "net1")
	if p := parents(); p["eth1"] || !p["eth0"] {
		t.Fatalf("after network rm net1, stats list parents %v; want eth0 only", p)
	}
	if p := scraped(); p["eth1"] || !p["eth0"] {
		t.Fatalf("after network rm net1, /metrics has VLAN series of parents %v; want eth0 only", p)
	}
}
