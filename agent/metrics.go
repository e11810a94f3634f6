package agent

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/mvlan/mvlan/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Version is set at build time (-ldflags -X).
var Version = "dev"

// metrics holds the agent's own instruments; per-network values and the
// datapath counters (metrics_datapath.go, written by exposition.go) are
// read when scraped.
type metrics struct {
	reconcile prometheus.Gauge
	build     prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		reconcile: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mvlan_reconcile_duration_seconds",
			Help: "Duration of the last reconcile of state and kernel, in seconds.",
		}),
		build: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "mvlan_build_info",
			Help:        "Build information of the running agent; always 1.",
			ConstLabels: prometheus.Labels{"version": Version, "goversion": runtime.Version(), "revision": revision()},
		}),
	}
}

func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func (m *metrics) handler(a *Agent) http.Handler {
	reg := prometheus.NewRegistry()
	m.build.Set(1)
	reg.MustRegister(m.reconcile, m.build, &stateCollector{a: a},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(a.eng.ClusterCollectors()...)
	return &scrapeHandler{a: a, reg: reg, dp: newDatapathText(), bufs: newScrapeBufferSet()}
}

var (
	descAddrs = prometheus.NewDesc("mvlan_ipam_addresses",
		"Addresses a subnet's containers without --ip get theirs from (its --ip-range, else the subnet), by state (used: held; free: left), reserved excluded.",
		[]string{"network", "subnet", "state"}, nil)
	descEndpoints = prometheus.NewDesc("mvlan_endpoints", "Endpoints attached to a network.", []string{"network"}, nil)
	descLeases    = prometheus.NewDesc("mvlan_dhcp_leases",
		"Endpoints of a DHCP network by the state of their lease of the family (bound, renewing, rebinding, expired: the address is off the endpoint).",
		[]string{"network", "family", "state"}, nil)
	descBlocks = prometheus.NewDesc("mvlan_cluster_blocks",
		"Address blocks of a cluster network (--scope cluster) this host holds.", []string{"network"}, nil)
	descExhausted = prometheus.NewDesc("mvlan_cluster_pool_exhausted_total",
		"Attaches on a cluster network refused because every address block of its ranges (of the family asked for) was held (by this host or others) and none of this host's had a free address, since the agent started.",
		[]string{"network"}, nil)
	descDrift = prometheus.NewDesc("mvlan_drift",
		"Disagreements between state, kernel and IPAM the agent's drift check (GET /v1/check) reports, by kind, from the check the previous scrape started (at most every 10 s, in the background).",
		[]string{"kind"}, nil)
)

// stateCollector reports per-network values at scrape time.
type stateCollector struct{ a *Agent }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAddrs
	ch <- descEndpoints
	ch <- descLeases
	ch <- descBlocks
	ch <- descExhausted
	ch <- descDrift
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.collectDrift(ch)
	usage, err := c.a.eng.Usage()
	if err != nil {
		c.a.log.Warn("metrics: network usage not exported", "err", err)
		return
	}
	for _, n := range usage {
		ch <- prometheus.MustNewConstMetric(descEndpoints, prometheus.GaugeValue, float64(n.Endpoints), n.Network)
		for st, v := range n.Leases {
			ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(v), n.Network, "ipv4", st)
		}
		for st, v := range n.Leases6 {
			ch <- prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(v), n.Network, "ipv6", st)
		}
		if n.Blocks >= 0 {
			ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, float64(n.Blocks), n.Network)
			ch <- prometheus.MustNewConstMetric(descExhausted, prometheus.CounterValue, float64(n.Exhausted), n.Network)
		}
		for _, u := range n.Subnets {
			s := u.Subnet.String()
			// The addresses a container without --ip gets from (the
			// --ip-range, else the subnet): the pool alerts' fill.
			ch <- prometheus.MustNewConstMetric(descAddrs, prometheus.GaugeValue, float64(u.UsedInRange), n.Network, s, "used")
			ch <- prometheus.MustNewConstMetric(descAddrs, prometheus.GaugeValue, float64(u.FreeInRange), n.Network, s, "free")
		}
	}
}

// driftWait bounds a scrape's wait for a drift check (the first one, or
// the next after one failed): past it the scrape goes on without
// mvlan_drift, rather than every series waiting for the slowest.
const driftWait = 2 * time.Second

// collectDrift reports the counts of the engine's last drift check. A
// scrape that finds them DriftCountAge old starts a check in the
// background and reports the last ones: the counts are those of the check
// the scrape before started (the first scrape waits for one, up to
// driftWait).
func (c *stateCollector) collectDrift(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), driftWait)
	defer cancel()
	drift, err := c.a.eng.DriftCounts(ctx)
	if err != nil {
		c.a.log.Warn("metrics: drift not exported", "err", err)
		return
	}
	for _, k := range engine.DriftKinds {
		ch <- prometheus.MustNewConstMetric(descDrift, prometheus.GaugeValue, float64(drift[k]), string(k))
	}
}
