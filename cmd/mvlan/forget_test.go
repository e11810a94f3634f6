package main

import (
	"encoding/json"
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestNetworkRmForgetsParentCounters: after network rm, the parent's
// per-VLAN counters are gone from mvlan stats (and from the map, whose
// room a full trunk needs), while another network's stay.
func TestNetworkRmForgetsParentCounters(t *testing.T) {
	e := newEnv(t, "eth1")
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
	if p := parents(); !p["eth0"] || !p["eth1"] {
		t.Fatalf("stats before rm lack a parent: %v", p)
	}
	e.a.ok("rm", "-f", e.name("c"), e.name("d"))
	e.a.ok("network", "rm", "net1")
	if p := parents(); p["eth1"] || !p["eth0"] {
		t.Fatalf("after network rm net1, stats list parents %v; want eth0 only", p)
	}
}
