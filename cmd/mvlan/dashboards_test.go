package main

// Issue 14, end to end: a real Prometheus scrapes a real agent while
// traffic flows, with mvlan's rules loaded; every variable, panel query and
// recording rule of the dashboards is asked of Prometheus and must return
// data, the values the test knows are checked, and the spoofing alert
// fires. The same scene makes the README's pictures (make screenshots).

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/dashboards"
	"github.com/mvlan/mvlan/internal/nstest"
)

// dashScene is a host (the sandbox) with three networks, each on a parent
// of its own, behind a router (the wire namespace):
//
//	blue  eth0  192.168.50.0/24  b1 .10, b2 .11
//	red   eth1  192.168.60.0/29  r1 .2, r2 .3 (r2 spoofs)
//	green eth2  192.168.70.0/24  g1; a host shim (.2); no traffic once set up
//
// This kernel has no 8021q, so the parents are untagged (VLAN 0); tagged
// frames of VLAN 60 sent from the wire into eth0 stand for a trunk's VLAN.
type dashScene struct {
	*dpEnv
	b1, b2, r1, r2, g1 string
	mac1               net.HardwareAddr // b1's
}

func newDashScene(t *testing.T) *dashScene {
	e := newDPEnv(t, dpModes[0]) // the default attach modes
	// No IPv6 chatter (router solicitations, MLD) on the idle parent.
	quietIPv6(t, e.sb, e.sb.Path)
	quietIPv6(t, e.sb, e.sb.WirePath)
	e.sb.AddVeth(t, "eth1")
	e.sb.AddVeth(t, "eth2")
	w := e.sb.WirePath
	e.in(w, "ip", "addr", "add", "192.168.50.1/24", "dev", "wire0")
	e.in(w, "ip", "addr", "add", "192.168.60.1/29", "dev", "w-eth1")
	e.in(w, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	e.a.ok("network", "create", "--subnet=192.168.50.0/24", "--gateway=192.168.50.1", "-o", "parent=eth0", "blue")
	e.a.ok("network", "create", "--subnet=192.168.60.0/29", "--gateway=192.168.60.1", "-o", "parent=eth1", "red")
	e.a.ok("network", "create", "--subnet=192.168.70.0/24", "-o", "parent=eth2", "-o", "host_shim=auto", "green")
	s := &dashScene{dpEnv: e, b1: e.name("b1"), b2: e.name("b2"), r1: e.name("r1"), r2: e.name("r2"), g1: e.name("g1")}
	ep := s.runD(s.b1, "blue", "--ip=192.168.50.10")
	s.mac1, _ = net.ParseMAC(ep.MAC)
	s.runD(s.b2, "blue", "--ip=192.168.50.11")
	s.runD(s.r1, "red", "--ip=192.168.60.2")
	s.runD(s.r2, "red", "--ip=192.168.60.3")
	s.runD(s.g1, "green")
	// Series a rate needs exist before Prometheus' first scrape: VLAN 60
	// (counted from its first frame) and r2's neighbour entry for the
	// router (so that its spoofed pings are IP frames, not ARP).
	s.tagged(2)
	out, err := s.pingFrom(s.r2, "192.168.60.1", false)
	s.wantPingOK("r2 pings its router", out, exitOf(err))
	s.settle(`parent="eth2"`)
	return s
}

// tagged sends n unicast frames of VLAN 60 from the wire into eth0, for a
// MAC nobody has (the host drops them after the count).
func (s *dashScene) tagged(n int) {
	s.t.Helper()
	foreign := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x60, 0x01}
	f := arpRequest(foreign, netip.MustParseAddr("10.60.0.1"), netip.MustParseAddr("10.60.0.2"))
	copy(f[0:6], []byte{0x02, 0x00, 0x5e, 0x00, 0x60, 0x02})
	f = slices.Concat(f[:12], []byte{0x81, 0x00, 0x00, 60}, f[12:])
	sendFrames(s.t, s.sb.WirePath, "wire0", f, n)
}

// traffic: pings inside blue (east-west), from red to blue through the
// router (hairpin on both), spoofed pings from r2 (dropped as ip_spoof),
// three ARP broadcasts from b1, and frames of VLAN 60.
func (s *dashScene) traffic() {
	s.t.Helper()
	out, err := s.pingFrom(s.b2, "192.168.50.10", false)
	s.wantPingOK("b2 pings b1", out, exitOf(err))
	out, err = s.pingFrom(s.r1, "192.168.50.10", false)
	s.wantPingOK("r1 pings b1 through the router", out, exitOf(err))
	s.in(s.r2, "ip", "addr", "add", "192.168.60.6/29", "dev", "eth0")
	out, err = nstest.RunErr(s.r2, "ping", "-c", "2", "-W", "1", "-i", "0.2", "-I", "192.168.60.6", "192.168.50.10")
	s.wantPingFail("r2 pings b1 from an address that is not its own", out, exitOf(err))
	sendFrames(s.t, s.b1, "eth0", arpRequest(s.mac1, netip.MustParseAddr("192.168.50.10"), netip.MustParseAddr("192.168.50.250")), 3)
	s.tagged(5)
}

// TestDashboardsPrometheus is issue 14's end-to-end test (about 20 s).
func TestDashboardsPrometheus(t *testing.T) {
	t.Parallel()
	nstest.RequireRoot(t)
	prometheusBin(t)
	files, err := dashboards.ReadDir("../../dashboards")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("../../rules/mvlan.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := newDashScene(t)
	p := startPrometheus(t, s.sb, rules)
	p.waitQuery(`mvlan_vlan_rx_packets_total{parent="eth0", vlan="60"}`, 20*time.Second, nonEmpty)
	s.traffic()
	// A scrape saw the last frames sent (VLAN 60's, 2+5), and every rule
	// group was evaluated after that scrape.
	last := p.waitQuery(`timestamp(mvlan_vlan_rx_packets_total{parent="eth0", vlan="60"} >= 7)`, 20*time.Second, nonEmpty)
	p.waitRulesAfter(time.UnixMilli(int64(last[0].Value*1000)), 20*time.Second)

	exported := metricFamilies(s.view("", "").scrape())
	recorded := wantRulesHealthy(t, p, exported)
	all := map[string]string{"instance": ".*", "parent": ".*", "vlan": ".*", "network": ".*"}
	for _, f := range files {
		wantVariables(t, p, f, all)
		// A variable of one value (not "All") is one network: each panel
		// must answer for one of the scene's (not every network has every
		// kind of traffic: only green has a host shim).
		choices := []map[string]string{all}
		for _, v := range f.Variables() {
			if v.Name == "network" && !v.Multi {
				choices = nil
				for _, n := range []string{"red", "blue", "green"} {
					vars := maps.Clone(all)
					vars["network"] = n
					choices = append(choices, vars)
				}
			}
		}
		for _, panel := range f.Leaves() {
			for _, q := range panel.Targets {
				wantNamesExist(t, f.Name+": "+panel.Title, q.Expr, recorded, exported)
				var err error
				for i, vars := range choices {
					wait := time.Second // the rules were evaluated after the last frames: an answer is there or not
					if i == len(choices)-1 {
						wait = 5 * time.Second
					}
					if _, err = p.tryQuery(dashboards.Expand(q.Expr, vars), wait, nonEmpty); err == nil {
						break
					}
				}
				if err != nil {
					t.Errorf("%s: panel %q: %v", f.Name, panel.Title, err)
				}
			}
		}
	}
	s.wantValues(p, files)
	p.waitQuery(`ALERTS{alertname="MvlanSpoofingDetected", alertstate="firing", network="red", reason="ip_spoof"}`, 15*time.Second, nonEmpty)
	wantAlertAPI(t, p)
	wantAlertExprs(t, p)
	if dir := os.Getenv("MVLAN_SCREENSHOTS"); dir != "" {
		s.screenshots(p, dir)
	}
}

// wantRulesHealthy: every rule of the file loaded and evaluates without
// error, every recorded series has data, every name a rule reads exists.
// It returns the recorded names.
func wantRulesHealthy(t *testing.T, p *promServer, exported map[string]bool) map[string]bool {
	t.Helper()
	groups, err := p.ruleGroups()
	if err != nil {
		t.Fatalf("GET /api/v1/rules: %v", err)
	}
	recorded := map[string]bool{}
	queries := map[string]string{}
	for _, g := range groups {
		for _, r := range g.Rules {
			queries[r.Name] = r.Query
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
			}
			if r.Type == "recording" {
				recorded[r.Name] = true
				if _, err := p.tryQuery(r.Name, 5*time.Second, nonEmpty); err != nil {
					t.Errorf("recording rule: %v", err)
				}
			}
		}
	}
	if len(recorded) == 0 || len(queries) == len(recorded) {
		t.Fatalf("Prometheus loaded %d rules, %d of them recording: want both kinds", len(queries), len(recorded))
	}
	for name, q := range queries {
		wantNamesExist(t, "rule "+name, q, recorded, exported)
	}
	return recorded
}

// elsewhere are the agent's metrics this scene has no series of: those of
// cluster networks (the rules' own tests, rules/, give them series).
var elsewhere = map[string]bool{"mvlan_cluster_blocks": true, "mvlan_cluster_pool_exhausted_total": true}

// metricFamilies are the names of the families in a /metrics text.
func metricFamilies(text string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			m[f[2]] = true
		}
	}
	return m
}

// wantNamesExist: every name expr reads is recorded by a rule, is
// Prometheus' own up, or is a family of the agent's /metrics.
func wantNamesExist(t *testing.T, where, expr string, recorded, exported map[string]bool) {
	t.Helper()
	for _, n := range dashboards.MetricNames(expr) {
		if !recorded[n] && !exported[n] && n != "up" && !elsewhere[n] {
			t.Errorf("%s reads %s: neither the agent's /metrics nor a recording rule has it", where, n)
		}
	}
}

// wantVariables: each label_values variable, asked of Prometheus with the
// variables before it at All, gives the values this scene has.
func wantVariables(t *testing.T, p *promServer, f dashboards.File, all map[string]string) {
	t.Helper()
	want := map[string][]string{
		"instance": {metricsAddr}, "parent": {"eth0", "eth1", "eth2"},
		"vlan": {"0", "60"}, "network": {"blue", "green", "red"},
	}
	for _, v := range f.Variables()[1:] {
		sel, label, _ := dashboards.LabelValues(v.QueryText())
		var series []map[string]string
		if err := p.api("series", url.Values{"match[]": {dashboards.Expand(sel, all)}}, &series); err != nil {
			t.Errorf("%s: variable %s: %v", f.Name, v.Name, err)
			continue
		}
		var got []string
		for _, s := range series {
			if !slices.Contains(got, s[label]) {
				got = append(got, s[label])
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want[v.Name]) {
			t.Errorf("%s: variable %s (%s) offers %q; want %q", f.Name, v.Name, v.QueryText(), got, want[v.Name])
		}
	}
}

// wantAlertAPI: /api/v1/alerts lists the spoofing alert, firing, for red.
func wantAlertAPI(t *testing.T, p *promServer) {
	t.Helper()
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.api("alerts", nil, &d); err != nil {
		t.Fatalf("GET /api/v1/alerts: %v", err)
	}
	for _, a := range d.Alerts {
		if a.Labels["alertname"] == "MvlanSpoofingDetected" && a.State == "firing" &&
			a.Labels["network"] == "red" && a.Labels["reason"] == "ip_spoof" {
			return
		}
	}
	t.Errorf("/api/v1/alerts has no firing MvlanSpoofingDetected for red, ip_spoof: %+v", d.Alerts)
}

// wantAlertExprs: of the alerting expressions, evaluated now against the
// real agent's series, only the spoofing alert's has a result; the others
// (pools far from full, programs all attached, agent up...) have none.
func wantAlertExprs(t *testing.T, p *promServer) {
	t.Helper()
	groups, err := p.ruleGroups()
	if err != nil {
		t.Fatalf("GET /api/v1/rules: %v", err)
	}
	n := 0
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Type != "alerting" {
				continue
			}
			n++
			res, err := p.query(r.Query)
			switch {
			case err != nil:
				t.Errorf("alert %s: %v", r.Name, err)
			case r.Name == "MvlanSpoofingDetected" && len(res) == 0:
				t.Errorf("alert %s: no result; want red's ip_spoof", r.Name)
			case r.Name != "MvlanSpoofingDetected" && len(res) > 0:
				t.Errorf("alert %s: %v; want no result in this scene", r.Name, res)
			}
		}
	}
	if n < 11 {
		t.Errorf("%d alerting rules loaded; want the 11 of rules/mvlan.rules.yml", n)
	}
}

// panelQuery is the first query of the panel titled title in file name,
// with the variables expanded.
func panelQuery(t *testing.T, files []dashboards.File, name, title string, vars map[string]string) string {
	t.Helper()
	for _, f := range files {
		for _, p := range f.Leaves() {
			if f.Name == name && p.Title == title {
				return dashboards.Expand(p.Targets[0].Expr, vars)
			}
		}
	}
	t.Fatalf("%s has no panel %q", name, title)
	return ""
}

// byLabels indexes a result by the values of labels, joined with "/".
func byLabels(r []promSample, labels ...string) map[string]float64 {
	m := map[string]float64{}
	for _, s := range r {
		var k []string
		for _, l := range labels {
			k = append(k, s.Metric[l])
		}
		m[strings.Join(k, "/")] = s.Value
	}
	return m
}

// wantValues checks the panels whose values the scene fixes.
func (s *dashScene) wantValues(p *promServer, files []dashboards.File) {
	t := s.t
	t.Helper()
	all := map[string]string{"instance": ".*", "parent": ".*", "vlan": ".*", "network": ".*"}
	red := map[string]string{"instance": ".*", "network": "red"}

	rx := byLabels(p.waitQuery(panelQuery(t, files, "mvlan-vlans.json", "Received packets/s per VLAN", all), 5*time.Second, nonEmpty), "parent", "vlan")
	t.Logf("received packets/s per parent/VLAN: %v", rx)
	for _, k := range []string{"eth0/0", "eth1/0", "eth0/60"} {
		if !(rx[k] > 0) {
			t.Errorf("Received packets/s per VLAN: %s = %v; want > 0 (it carried traffic): %v", k, rx[k], rx)
		}
	}
	if v, ok := rx["eth2/0"]; !ok || v != 0 {
		t.Errorf("Received packets/s per VLAN: eth2/0 = %v (present %v); want 0, present (idle since before the first scrape)", v, ok)
	}
	drops := byLabels(p.waitQuery(panelQuery(t, files, "mvlan-overview.json", "Policy drops by reason", all), 5*time.Second, nonEmpty), "reason")
	if !(drops["ip_spoof"] > 0) {
		t.Errorf("Policy drops by reason: ip_spoof = %v; want > 0: %v", drops["ip_spoof"], drops)
	}
	netDrops := byLabels(p.waitQuery(panelQuery(t, files, "mvlan-network.json", "Drops by reason", red), 5*time.Second, nonEmpty), "reason")
	if !(netDrops["ip_spoof"] > 0) {
		t.Errorf("Network red, Drops by reason: ip_spoof = %v; want > 0: %v", netDrops["ip_spoof"], netDrops)
	}
	// Assignable: the subnet minus network, broadcast and gateway.
	fill := byLabels(p.waitQuery(panelQuery(t, files, "mvlan-overview.json", "Address pool fill per subnet", all), 5*time.Second, nonEmpty), "network", "subnet")
	for k, want := range map[string]float64{"red/192.168.60.0/29": 2.0 / 5, "blue/192.168.50.0/24": 2.0 / 253, "green/192.168.70.0/24": 2.0 / 253} {
		if math.Abs(fill[k]-want) > 1e-9 {
			t.Errorf("Address pool fill per subnet: %s = %v; want %v (%s): %v", k, fill[k], want, fmt.Sprintf("%.1f%%", 100*want), fill)
		}
	}
	flood := byLabels(p.waitQuery(panelQuery(t, files, "mvlan-vlans.json", "Flood by kind and direction", all), 5*time.Second, nonEmpty), "network", "kind", "direction")
	if !(flood["blue/broadcast/tx"] > 0) {
		t.Errorf("Flood by kind and direction: blue/broadcast/tx = %v; want > 0 (b1's ARP broadcasts): %v", flood["blue/broadcast/tx"], flood)
	}
	hairpin := byLabels(p.waitQuery(panelQuery(t, files, "mvlan-vlans.json", "Hairpin packets/s per network", all), 5*time.Second, nonEmpty), "network")
	if !(hairpin["blue"] > 0 && hairpin["red"] > 0) || hairpin["green"] != 0 {
		t.Errorf("Hairpin packets/s per network = %v; want blue and red > 0 (routed pings), green 0", hairpin)
	}
}
