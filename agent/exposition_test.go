package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mvlan/mvlan/api"
)

// scrapeText writes s through d and parses it back with Prometheus' own
// text parser, failing on anything it rejects (a repeated family, a bad
// escape).
func scrapeText(t *testing.T, d *datapathText, s api.Stats, statErr error) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	d.write(w, s, statErr, slog.New(slog.DiscardHandler))
	w.Flush()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("the text does not parse: %v\n%s", err, b.String())
	}
	return b.String(), mfs
}

// sample finds the value of the sample of family name with labels.
func sample(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) != fmt.Sprint(labels) {
			continue
		}
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue(), true
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func testStats(parent string, vlans int) api.Stats {
	s := api.Stats{Malformed: map[string]api.Count{"ep_egress": {Packets: 2}}, MapFull: map[string]uint64{"endpoints": 0, "vlan_counters": 9}}
	for v := range vlans {
		s.VLANs = append(s.VLANs, api.VLANStats{Parent: parent, VLAN: uint16(v),
			Traffic: api.Traffic{Rx: api.Count{Packets: uint64(v), Bytes: uint64(100 * v)}, Tx: api.Count{Packets: 1, Bytes: 60}}})
	}
	s.Networks = []api.NetworkStats{{
		Network: "pub_net", Traffic: api.Traffic{Rx: api.Count{Packets: 7, Bytes: 700}},
		Drops:   map[string]api.Count{"ip_spoof": {Packets: 3}, "mac_spoof": {}},
		Flood:   []api.FloodStats{{VLAN: 0, Kind: "broadcast", Direction: "tx", Count: api.Count{Packets: 5}}},
		Hairpin: []api.VLANCount{{VLAN: 0, Count: api.Count{Packets: 4, Bytes: 400}}},
	}}
	s.Attachments = []api.Attachment{{Link: "c1/eth0", Hook: "egress", Program: "ep_egress", Mode: "tc"}}
	return s
}

func TestDatapathText(t *testing.T) {
	d := newDatapathText()
	weird := `eth"0\x` + "\n" // a link name with every character the format escapes
	text, mfs := scrapeText(t, d, testStats(weird, 3), nil)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"mvlan_vlan_rx_packets_total", map[string]string{"parent": weird, "vlan": "2"}, 2},
		{"mvlan_vlan_rx_bytes_total", map[string]string{"parent": weird, "vlan": "2"}, 200},
		{"mvlan_vlan_tx_bytes_total", map[string]string{"parent": weird, "vlan": "0"}, 60},
		{"mvlan_network_rx_bytes_total", map[string]string{"network": "pub_net"}, 700},
		{"mvlan_policy_drops_total", map[string]string{"network": "pub_net", "reason": "ip_spoof"}, 3},
		{"mvlan_policy_drops_total", map[string]string{"network": "pub_net", "reason": "mac_spoof"}, 0},
		{"mvlan_flood_packets_total", map[string]string{"network": "pub_net", "vlan": "0", "kind": "broadcast", "direction": "tx"}, 5},
		{"mvlan_hairpin_bytes_total", map[string]string{"network": "pub_net", "vlan": "0"}, 400},
		{"mvlan_malformed_packets_total", map[string]string{"program": "ep_egress"}, 2},
		{"mvlan_datapath_map_full_total", map[string]string{"map": "vlan_counters"}, 9},
		{"mvlan_datapath_map_full_total", map[string]string{"map": "endpoints"}, 0},
		{"mvlan_attach_info", map[string]string{"link": "c1/eth0", "hook": "egress", "mode": "tc"}, 1},
		{"mvlan_datapath_scrape_error", map[string]string{}, 0},
	}
	for _, c := range checks {
		if v, ok := sample(mfs, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (found %v); want %v\n%s", c.name, c.labels, v, ok, c.want, text)
		}
	}
	if mfs["mvlan_eastwest_packets_total"] != nil {
		t.Errorf("a family without samples was written:\n%s", text)
	}
	if got := mfs["mvlan_vlan_rx_packets_total"].GetType(); got != dto.MetricType_COUNTER {
		t.Errorf("mvlan_vlan_rx_packets_total has type %v; want counter", got)
	}

	// The next scrape has new values and one VLAN less: the values change,
	// the gone series is not written.
	s := testStats(weird, 2)
	s.VLANs[1].Rx.Packets = 41
	text, mfs = scrapeText(t, d, s, nil)
	if v, _ := sample(mfs, "mvlan_vlan_rx_packets_total", map[string]string{"parent": weird, "vlan": "1"}); v != 41 {
		t.Errorf("second scrape: vlan 1 rx packets = %v; want 41\n%s", v, text)
	}
	if _, ok := sample(mfs, "mvlan_vlan_rx_packets_total", map[string]string{"parent": weird, "vlan": "2"}); ok {
		t.Errorf("second scrape still has VLAN 2:\n%s", text)
	}

	// A failed read writes only the error gauge, at 1.
	text, mfs = scrapeText(t, d, api.Stats{}, errors.New("map read failed"))
	if v, ok := sample(mfs, "mvlan_datapath_scrape_error", map[string]string{}); !ok || v != 1 || len(mfs) != 1 {
		t.Errorf("after a failed read: %d families, error gauge %v; want only the gauge at 1:\n%s", len(mfs), v, text)
	}
}

// TestDatapathTextNotUTF8: a link named with bytes that are not UTF-8
// (the kernel takes any) is written with U+FFFD for them: the scrape
// parses, the series is there.
func TestDatapathTextNotUTF8(t *testing.T) {
	_, mfs := scrapeText(t, newDatapathText(), testStats("eth\xff0", 1), nil)
	if v, ok := sample(mfs, "mvlan_vlan_tx_bytes_total", map[string]string{"parent": "eth\uFFFD0", "vlan": "0"}); !ok || v != 60 {
		t.Errorf("mvlan_vlan_tx_bytes_total of eth\\xff0: %v (found %v), want 60", v, ok)
	}
}

// TestDatapathTextForgets: series of links that went away leave the cache
// once they are most of it.
func TestDatapathTextForgets(t *testing.T) {
	d := newDatapathText()
	for i := range 50 {
		scrapeText(t, d, testStats(fmt.Sprintf("veth%d", i), 10), nil)
	}
	if n := len(d.vlan[0].series); n > 2*10+64 {
		t.Errorf("after 50 scrapes of 10 VLANs on a new link each, %d series are cached; want at most %d", n, 2*10+64)
	}
}

// TestDatapathTextCached: a scrape written through the caches of earlier
// ones (series added, removed, reordered, parents renamed) is the text a
// fresh writer makes of the same counters.
func TestDatapathTextCached(t *testing.T) {
	attach := func(links ...string) []api.Attachment {
		var as []api.Attachment
		for _, l := range links {
			as = append(as, api.Attachment{Link: l, Hook: "egress", Mode: "tcx"}, api.Attachment{Link: l, Hook: "ingress", Mode: "tcx"})
		}
		return as
	}
	scrapes := []struct {
		name    string
		parent  string
		vlans   int
		attachs []api.Attachment
	}{
		{"first", "eth0", 5, attach("a/eth0", "b/eth0", "c/eth0")},
		{"same again", "eth0", 5, attach("a/eth0", "b/eth0", "c/eth0")},
		{"one removed in the middle", "eth0", 5, attach("a/eth0", "c/eth0")},
		{"one added in front", "eth0", 5, attach("0/eth0", "a/eth0", "c/eth0")},
		{"reordered", "eth0", 5, attach("c/eth0", "0/eth0", "a/eth0")},
		{"other parent, fewer VLANs", "trunk0", 3, attach("c/eth0")},
		{"two parents", "eth0+trunk0", 4, attach("c/eth0")},
		{"first parent back, more VLANs", "eth0", 7, nil},
		{"everything again", "eth0", 5, attach("a/eth0", "b/eth0", "c/eth0")},
	}
	d := newDatapathText()
	for i, sc := range scrapes {
		parents := strings.Split(sc.parent, "+")
		s := testStats(parents[0], sc.vlans)
		for _, p := range parents[1:] {
			s.VLANs = append(s.VLANs, testStats(p, sc.vlans).VLANs...)
		}
		s.Attachments = sc.attachs
		for j := range s.VLANs {
			s.VLANs[j].Rx.Packets = uint64(100*i + j)
		}
		got, mfs := scrapeText(t, d, s, nil)
		want, _ := scrapeText(t, newDatapathText(), s, nil)
		if got != want {
			t.Fatalf("scrape %d (%s) through the caches:\n%s\nwant, as a fresh writer writes it:\n%s", i, sc.name, got, want)
		}
		if n := len(mfs["mvlan_vlan_rx_packets_total"].GetMetric()); n != len(s.VLANs) {
			t.Errorf("scrape %d (%s): %d VLAN series, want %d:\n%s", i, sc.name, n, len(s.VLANs), got)
		}
		for _, v := range s.VLANs {
			l := map[string]string{"parent": v.Parent, "vlan": fmt.Sprint(v.VLAN)}
			if n, ok := sample(mfs, "mvlan_vlan_rx_packets_total", l); !ok || n != float64(v.Rx.Packets) {
				t.Fatalf("scrape %d (%s): rx packets of %v = %v (found %v), want %d:\n%s", i, sc.name, l, n, ok, v.Rx.Packets, got)
			}
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br", true},
		{"deflate, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"x-gzip", false},
	} {
		r, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept-Encoding", tt.header)
		if got := acceptsGzip(r); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v; want %v", tt.header, got, tt.want)
		}
	}
}

func BenchmarkDatapathText(b *testing.B) {
	d := newDatapathText()
	s := testStats("eth0", 4095)
	for i := range 1000 {
		s.Attachments = append(s.Attachments, api.Attachment{Link: fmt.Sprintf("c%d/eth0", i), Hook: "egress", Mode: "tc"},
			api.Attachment{Link: fmt.Sprintf("c%d/eth0", i), Hook: "ingress", Mode: "tc"})
	}
	w := bufio.NewWriter(io.Discard)
	for b.Loop() {
		d.write(w, s, nil, nil)
	}
}
