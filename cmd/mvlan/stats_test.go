package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// metricsAddr is where the stats tests' agents serve /metrics, inside the
// sandbox's host namespace (each sandbox has its own loopback).
const metricsAddr = "127.0.0.1:9469"

// pings is how many echo requests the tests send; both endpoints count
// (requests out of one, replies out of the other), plus a few ARP frames.
const (
	pings    = 5
	arpSlack = 6
)

// startWith runs the agent like agentProc.start with extra agent flags
// (they come last, so they override the harness's, e.g. --metrics-addr "").
func startWith(a *agentProc, extra ...string) {
	a.t.Helper()
	a.flags = extra
	a.start()
}

// statsEnv is an agent serving /metrics with pub_net on eth0 and two
// containers, c1 (172.16.86.10) and c2 (172.16.86.11).
type statsEnv struct {
	t      *testing.T
	sb     *nstest.Sandbox
	a      *agentProc
	c1, c2 string
}

func newStatsEnv(t *testing.T, agentFlags ...string) *statsEnv {
	sb := nstest.NewSandbox(t)
	cleanupContainers(t, sb.Name+"-c")
	e := &statsEnv{t: t, sb: sb, a: newAgent(t, sb), c1: sb.Name + "-c1", c2: sb.Name + "-c2"}
	startWith(e.a, append([]string{"--metrics-addr", metricsAddr}, agentFlags...)...)
	t.Cleanup(func() { e.a.mv("rm", "-f", e.c1, e.c2) })
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.a.ok("run", "-d", "--name", e.c1, "--net", "pub_net", "--ip", "172.16.86.10")
	e.a.ok("run", "-d", "--name", e.c2, "--net", "pub_net", "--ip", "172.16.86.11")
	return e
}

// ping runs ping(8) in container from with `ip netns exec`.
func (e *statsEnv) ping(from string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", from, "ping", "-i", "0.2", "-W", "1"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *statsEnv) mustPing(from, to string) {
	e.t.Helper()
	if out, err := e.ping(from, "-c", strconv.Itoa(pings), to); err != nil {
		e.t.Fatalf("ping %s from %s: %v\n%s", to, from, err, out)
	}
}

// stats is `mvlan stats --format json`.
func (e *statsEnv) stats() api.Stats {
	e.t.Helper()
	var s api.Stats
	if err := json.Unmarshal([]byte(e.a.ok("stats", "--format", "json")), &s); err != nil {
		e.t.Fatalf("mvlan stats --format json: %v", err)
	}
	return s
}

// scrape fetches /metrics over a connection made inside the sandbox.
func (e *statsEnv) scrape() string {
	e.t.Helper()
	body, _ := e.scrapeAs("")
	return body
}

// scrapeAs fetches /metrics with the given Accept-Encoding ("" sends
// none) and returns the text, gunzipped if the agent gzipped it, and the
// Content-Encoding it answered with.
func (e *statsEnv) scrapeAs(acceptEncoding string) (string, string) {
	e.t.Helper()
	tr := &http.Transport{DisableCompression: true, DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		err = nstest.In(e.sb.Path, func() error {
			var d net.Dialer
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatalf("scrape: %v\nagent log:\n%s", err, e.a.log)
	}
	defer resp.Body.Close()
	var rd io.Reader = resp.Body
	enc := resp.Header.Get("Content-Encoding")
	if enc == "gzip" {
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			e.t.Fatalf("scrape: Content-Encoding gzip but %v", err)
		}
		rd = gz
	}
	body, err := io.ReadAll(rd)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("scrape: %s %v\n%s", resp.Status, err, body)
	}
	return string(body), enc
}

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// metricValue returns the value of the sample of name whose labels
// include want, and whether there is one.
func metricValue(text, name string, want map[string]string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(rest[:strings.LastIndexByte(rest, ' ')], -1) {
			labels[m[1]] = m[2]
		}
		if matches(labels, want) {
			v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func network(t *testing.T, s api.Stats, name string) api.NetworkStats {
	t.Helper()
	for _, n := range s.Networks {
		if n.Network == name {
			return n
		}
	}
	t.Fatalf("mvlan stats has no network %s: %+v", name, s.Networks)
	return api.NetworkStats{}
}

func vlan(s api.Stats, parent string, vid uint16) api.Traffic {
	for _, v := range s.VLANs {
		if v.Parent == parent && v.VLAN == vid {
			return v.Traffic
		}
	}
	return api.Traffic{}
}

// wantDelta checks that a counter moved by lo..hi (packets or bytes).
func wantDelta(t *testing.T, what string, before, after uint64, lo, hi int) {
	t.Helper()
	d := int(after - before)
	t.Logf("%s: +%d", what, d)
	if after < before || d < lo || d > hi {
		t.Errorf("%s moved by %d (from %d to %d); want %d..%d", what, d, before, after, lo, hi)
	}
}

// wantPingCounted: a ping of `pings` echoes between c1 and c2 moved the
// network's rx and tx (each endpoint counts its own frames: 2*pings, plus
// ARP), eth0's VLAN 0 rx (bridge mode hands frames between slaves to the
// parent's ingress) and the east-west counter.
func (e *statsEnv) wantPingCounted(before, after api.Stats) {
	e.t.Helper()
	nb, na := network(e.t, before, "pub_net"), network(e.t, after, "pub_net")
	wantDelta(e.t, "pub_net rx packets", nb.Rx.Packets, na.Rx.Packets, 2*pings, 2*pings+arpSlack)
	wantDelta(e.t, "pub_net tx packets", nb.Tx.Packets, na.Tx.Packets, 2*pings, 2*pings+arpSlack)
	// 98-byte echo frames (56 bytes of data), and the ARP frames' 42 each.
	wantDelta(e.t, "pub_net rx bytes", nb.Rx.Bytes, na.Rx.Bytes, 2*pings*98, 2*pings*98+arpSlack*42)
	vb, va := vlan(before, "eth0", 0), vlan(after, "eth0", 0)
	wantDelta(e.t, "eth0 vlan 0 rx packets", vb.Rx.Packets, va.Rx.Packets, 2*pings, 2*pings+arpSlack)
	ewb, ewa := api.VLANTotal(nb.EastWest), api.VLANTotal(na.EastWest)
	wantDelta(e.t, "pub_net east-west packets", ewb.Packets, ewa.Packets, 2*pings, 2*pings+arpSlack)
}

// TestStatsCounters: what an operator checks after traffic: `mvlan stats`
// shows the pings, a spoofing container's frames are dropped and counted
// in mvlan_policy_drops_total, and the table and --watch render.
func TestStatsCounters(t *testing.T) {
	e := newStatsEnv(t)
	before := e.stats()
	e.mustPing(e.c2, "172.16.86.10")
	e.wantPingCounted(before, e.stats())

	text := e.scrape()
	for _, l := range []map[string]string{{"link": "eth0", "hook": "ingress"}, {"link": e.c1 + "/eth0", "hook": "egress"}} {
		if v, ok := metricValue(text, "mvlan_attach_info", l); !ok || v != 1 {
			t.Errorf("no mvlan_attach_info%v 1 in /metrics:\n%s", l, grepLines(text, "mvlan_attach_info"))
		}
	}
	if n := len(regexp.MustCompile(`mvlan_attach_info\{.*mode="tcx?"\} 1`).FindAllString(text, -1)); n != 6 {
		t.Errorf("%d mvlan_attach_info samples with mode tcx or tc; want 6 (eth0 and 2 endpoints, 2 hooks each):\n%s",
			n, grepLines(text, "mvlan_attach_info"))
	}
	e.spoof()
	out := e.a.ok("stats")
	mustContain(t, "mvlan stats", out, "Per VLAN", "eth0", "Per network", "pub_net", "ip_spoof")
	e.watch()
}

// spoof: c2 sends from an address that is not its own; the frames are
// dropped (the ping fails) and counted: 3 echo requests from it move
// mvlan_policy_drops_total{reason="ip_spoof"} by exactly 3; and c2's own
// traffic still flows.
func (e *statsEnv) spoof() {
	e.t.Helper()
	labels := map[string]string{"network": "pub_net", "reason": "ip_spoof"}
	if _, ok := metricValue(e.scrape(), "mvlan_policy_drops_total", labels); !ok {
		e.t.Fatalf("no mvlan_policy_drops_total%v before any drop (want it exported at 0)", labels)
	}
	if out, err := exec.Command("ip", "netns", "exec", e.c2, "ip", "addr", "add", "172.16.86.99/24", "dev", "eth0").CombinedOutput(); err != nil {
		e.t.Fatalf("add a foreign address in %s: %v\n%s", e.c2, err, out)
	}
	if out, err := e.ping(e.c2, "-c", "3", "-I", "172.16.86.99", "172.16.86.10"); err == nil {
		e.t.Errorf("ping from a spoofed source got through:\n%s", out)
	}
	before, _ := metricValue(e.scrape(), "mvlan_policy_drops_total", labels)
	sendSpoofed(e.t, e.c2, "172.16.86.99", "172.16.86.10", 3)
	after, _ := metricValue(e.scrape(), "mvlan_policy_drops_total", labels)
	wantDelta(e.t, "pub_net's ip_spoof drops for 3 spoofed echo requests", uint64(before), uint64(after), 3, 3)
	e.mustPing(e.c2, "172.16.86.10")
}

// sendSpoofed sends n echo requests from namespace ns with the source src
// (an address of ns, not its endpoint's) to dst, whose MAC ns knows: n
// frames (nstest.SendEchoes; ping(8) sends a request its send refused
// again, as often as its timing allows). It fails t unless the link's
// egress dropped each (ENOBUFS).
func sendSpoofed(t *testing.T, ns, src, dst string, n int) {
	t.Helper()
	errs, err := nstest.SendEchoes(ns, netip.MustParseAddr(src), netip.MustParseAddr(dst), n)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if !errors.Is(err, unix.ENOBUFS) {
			t.Errorf("echo request %d of %d from %s in %s: %v; want ENOBUFS (dropped on the link's egress)", i+1, n, src, ns, err)
		}
	}
}

// watch runs `mvlan stats --watch` until it has redrawn the screen three
// times (at most 5 s), then Ctrl-C: it showed rates and exited 0.
func (e *statsEnv) watch() {
	e.t.Helper()
	cmd := exec.Command(mvlanBin, "--socket", e.a.socket, "stats", "--watch", "--interval", "200ms")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.Count(clearScreen) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		e.t.Errorf("mvlan stats --watch after Ctrl-C: %v; want exit 0\n%s", err, out.String())
	}
	s := out.String()
	if n := out.Count(clearScreen); n < 3 {
		e.t.Errorf("mvlan stats --watch redrew %d times in 5s at 200ms; want at least 3\n%q", n, s)
	}
	mustContain(e.t, "mvlan stats --watch", s, "/s)", "pub_net", "eth0")
}

// TestStatsAttachModeTC: with --attach-mode tc the programs are clsact
// filters, /metrics says so, and the counters move the same.
func TestStatsAttachModeTC(t *testing.T) {
	e := newStatsEnv(t, "--attach-mode", "tc")
	text := e.scrape()
	for _, l := range []map[string]string{{"link": "eth0", "hook": "ingress"}, {"link": "eth0", "hook": "egress"},
		{"link": e.c1 + "/eth0", "hook": "ingress"}, {"link": e.c2 + "/eth0", "hook": "egress"}} {
		l["mode"] = "tc"
		if v, ok := metricValue(text, "mvlan_attach_info", l); !ok || v != 1 {
			t.Errorf("no mvlan_attach_info%v 1 in /metrics:\n%s", l, grepLines(text, "mvlan_attach_info"))
		}
	}
	if strings.Contains(text, `mode="tcx"`) {
		t.Errorf("an attachment in tcx mode with --attach-mode tc:\n%s", grepLines(text, "mvlan_attach_info"))
	}
	before := e.stats()
	e.mustPing(e.c1, "172.16.86.11")
	e.wantPingCounted(before, e.stats())
}

// TestIPAMFreeInRange: a network's addresses are counted where a
// container without --ip gets its own, within its --ip-range (4 here),
// not the whole subnet, so that the pool alerts fire when containers
// cannot start: an --ip outside the range counts in neither state.
func TestIPAMFreeInRange(t *testing.T) {
	t.Parallel()
	e := newStatsEnv(t)
	e.sb.AddVeth(t, "eth1")
	e.a.ok("network", "create", "--subnet=10.66.0.0/24", "--ip-range=10.66.0.8/30", "-o", "parent=eth1", "ranged")
	e.a.ok("run", "-d", "--name", e.sb.Name+"-r1", "--net", "ranged")
	e.a.ok("run", "-d", "--name", e.sb.Name+"-r2", "--net", "ranged", "--ip", "10.66.0.100")
	t.Cleanup(func() { e.a.mv("rm", "-f", e.sb.Name+"-r1", e.sb.Name+"-r2") })
	text := e.scrape()
	for state, want := range map[string]float64{"used": 1, "free": 3} {
		l := map[string]string{"network": "ranged", "subnet": "10.66.0.0/24", "state": state}
		if v, ok := metricValue(text, "mvlan_ipam_addresses", l); !ok || v != want {
			t.Errorf("mvlan_ipam_addresses%v = %v (found %v), want %v:\n%s", l, v, ok, want, grepLines(text, "mvlan_ipam_addresses"))
		}
	}
}

// TestMetricsPromtool: promtool finds nothing to complain about in
// /metrics, and every metric family of DESIGN.md is there.
func TestMetricsPromtool(t *testing.T) {
	nstest.RequireRoot(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: apt-get install prometheus (Debian's package that ships /usr/bin/promtool)")
	}
	e := newStatsEnv(t)
	e.mustPing(e.c2, "172.16.86.10")
	text, enc := e.scrapeAs("")
	if enc != "" {
		t.Errorf("a scrape without Accept-Encoding came back with Content-Encoding %q", enc)
	}
	zipped, enc := e.scrapeAs("gzip")
	if enc != "gzip" {
		t.Errorf("a scrape with Accept-Encoding gzip came back with Content-Encoding %q; want gzip", enc)
	}
	for _, body := range []string{text, zipped} {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics (Content-Encoding %q): %v\n%s", enc, err, out)
		}
	}
	if a, b := seriesNames(text), seriesNames(zipped); !slices.Equal(a, b) {
		t.Errorf("plain and gzipped scrapes have different series:\n%v\n%v", a, b)
	}
	for _, name := range []string{"mvlan_vlan_rx_packets_total", "mvlan_vlan_rx_bytes_total", "mvlan_vlan_tx_packets_total",
		"mvlan_vlan_tx_bytes_total", "mvlan_network_rx_packets_total", "mvlan_network_rx_bytes_total",
		"mvlan_network_tx_packets_total", "mvlan_network_tx_bytes_total", "mvlan_flood_packets_total",
		"mvlan_hairpin_packets_total", "mvlan_hairpin_bytes_total", "mvlan_eastwest_packets_total",
		"mvlan_eastwest_bytes_total", "mvlan_policy_drops_total", "mvlan_malformed_packets_total",
		"mvlan_attach_info", "mvlan_ipam_addresses", "mvlan_endpoints", "mvlan_reconcile_duration_seconds",
		"mvlan_build_info"} {
		if !strings.Contains(text, "\n"+name+"{") && !strings.Contains(text, "\n"+name+" ") {
			t.Errorf("/metrics has no sample of %s", name)
		}
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStatsTableRates: the table shows totals, and rates next to them
// when there is a previous reading (no root needed).
func TestStatsTableRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reading := func(at time.Time, rx uint64) api.Stats {
		tr := api.Traffic{Rx: api.Count{Packets: rx, Bytes: rx * 100}}
		return api.Stats{Time: at, VLANs: []api.VLANStats{{Parent: "eth0", VLAN: 50, Traffic: tr}},
			Networks: []api.NetworkStats{{Network: "pub_net", Traffic: tr,
				Drops: map[string]api.Count{"ip_spoof": {Packets: 3, Bytes: 294}}}}}
	}
	prev, cur := reading(t0, 100), reading(t0.Add(2*time.Second), 3100)
	var b bytes.Buffer
	if err := printStats(&b, cur, &prev); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "table with rates", b.String(), "eth0", "50", "3100 (1.5k/s)", "310000 (150.0kB/s)", "0 (0/s)",
		"pub_net", "ip_spoof", "294")
	b.Reset()
	if err := printStats(&b, cur, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "/s)") {
		t.Errorf("rates without a previous reading:\n%s", b.String())
	}
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1.0k", 2.5e6: "2.5M", 7e12: "7.0T"} {
		if got := humanRate(v, false); got != want {
			t.Errorf("humanRate(%v) = %q; want %q", v, got, want)
		}
	}
}

// seriesNames are the sorted "name{labels}" of every sample in a scrape
// (values and comments left out).
func seriesNames(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			out = append(out, line[:i])
		}
	}
	slices.Sort(out)
	return out
}
