package main

// make screenshots: TestDashboardsPrometheus with MVLAN_SCREENSHOTS=DIR
// keeps its traffic going for a while, then photographs Prometheus' own
// graph page for the dashboards' key queries with headless Chromium
// (Debian's chromium; no Grafana package exists here) into DIR.

import (
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mvlan/mvlan/dashboards"
	"github.com/mvlan/mvlan/internal/nstest"
)

// shot is one picture: a panel's query on the graph page.
type shot struct {
	file, dashboard, panel string
	stacked                bool
}

var shots = []shot{
	{"dash-vlan-rx.png", "mvlan-vlans.json", "Received packets/s per VLAN", true},
	{"dash-drops.png", "mvlan-overview.json", "Policy drops by reason", true},
	{"dash-ipam-fill.png", "mvlan-overview.json", "Address pool fill per subnet", false},
	{"dash-flood.png", "mvlan-vlans.json", "Flood by kind and direction", true},
}

// screenshotTraffic is how long the scene's traffic runs before the
// pictures, so that the graphs have a shape.
const screenshotTraffic = 150 * time.Second

func (s *dashScene) screenshots(p *promServer, dir string) {
	t := s.t
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("make screenshots needs headless Chromium: apt-get install --no-install-recommends chromium")
	}
	files, err := dashboards.ReadDir("../../dashboards")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; time.Since(start) < screenshotTraffic; i++ {
		s.moreTraffic(i)
	}
	all := map[string]string{"instance": ".*", "parent": ".*", "vlan": ".*", "network": ".*"}
	for _, sh := range shots {
		expr := panelQuery(t, files, sh.dashboard, sh.panel, all)
		p.waitQuery(expr, 5*time.Second, nonEmpty)
		out := filepath.Join(dir, sh.file)
		s.photograph(chromium, graphURL(expr, sh.stacked), out)
		t.Logf("%s: %s", out, expr)
	}
}

// moreTraffic is round i of a changing mix: pings in blue and from red,
// spoofed pings every fifth round, broadcast bursts, VLAN 60 frames, and
// a container that comes and goes.
func (s *dashScene) moreTraffic(i int) {
	s.t.Helper()
	n := strconv.Itoa(5 + 10*(i%4))
	_, _ = nstest.RunErr(s.b2, "ping", "-q", "-c", n, "-i", "0.05", "-W", "1", "192.168.50.10")
	_, _ = nstest.RunErr(s.r1, "ping", "-q", "-c", strconv.Itoa(3+i%5), "-i", "0.1", "-W", "1", "192.168.50.10")
	if i%5 == 2 {
		_, _ = nstest.RunErr(s.r2, "ping", "-q", "-c", "3", "-i", "0.1", "-W", "1", "-I", "192.168.60.6", "192.168.50.10")
	}
	sendFrames(s.t, s.b1, "eth0", arpRequest(s.mac1, netip.MustParseAddr("192.168.50.10"), netip.MustParseAddr("192.168.50.250")), 2+i%3)
	s.tagged(10 + 5*(i%3))
	switch i % 12 { // a third container comes and goes in red: its pool fills 2/5, 3/5
	case 4:
		s.a.ok("run", "-d", "--name", s.name("r3"), "--net", "red")
	case 10:
		s.a.ok("rm", "-f", s.name("r3"))
	}
	time.Sleep(time.Second)
}

// graphURL is Prometheus' graph page for expr over the last 3 minutes.
func graphURL(expr string, stacked bool) string {
	v := url.Values{
		"g0.expr":            {expr},
		"g0.tab":             {"0"},
		"g0.range_input":     {"3m"},
		"g0.stacked":         {map[bool]string{true: "1", false: "0"}[stacked]},
		"g0.show_exemplars":  {"0"},
		"g0.display_mode":    {map[bool]string{true: "stacked", false: "lines"}[stacked]},
		"g0.step_input":      {"1"},
		"g0.end_input":       {""},
		"g0.moment_input":    {""},
		"g0.show_tree":       {"0"},
		"g0.range_vector_ts": {""},
	}
	return "http://" + promAddr + "/graph?" + v.Encode()
}

// photograph runs headless Chromium in the sandbox (where Prometheus
// listens) with a fresh profile and saves a PNG of the page.
func (s *dashScene) photograph(chromium, pageURL, out string) {
	s.t.Helper()
	profile := s.t.TempDir()
	args := []string{"--net=" + s.sb.Path, "--", chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--hide-scrollbars", "--window-size=1400,1000",
		"--virtual-time-budget=20000", "--screenshot=" + out, pageURL}
	if o, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("chromium %s: %v\n%s", pageURL, err, o)
	}
	if st, err := os.Stat(out); err != nil || st.Size() < 10000 {
		s.t.Fatalf("chromium wrote no picture to %s (%v)", out, fmt.Sprint(err))
	}
}
