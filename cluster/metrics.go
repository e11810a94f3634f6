package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a client's instruments: its requests to etcd, the
// transactions it lost to other hosts, and what reclaim and fencing did.
type metrics struct {
	latency   *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	reclaimed *prometheus.CounterVec
	refused   *prometheus.CounterVec
	lost      prometheus.Counter
	gaveBack  prometheus.Counter
	dad       prometheus.Counter
}

// The label values each vector starts with, at zero: every series an
// alert reads exists from the start (an absent series is not a zero).
var (
	metricOps   = []string{"get", "grant", "keepalive", "txn"} // every write is a txn
	metricKinds = []string{"block", "claim"}
)

func newMetrics() *metrics {
	m := newVectors()
	for _, op := range metricOps {
		m.errors.WithLabelValues(op)
	}
	for _, kind := range metricKinds {
		m.conflicts.WithLabelValues(kind)
		m.reclaimed.WithLabelValues(kind)
		m.refused.WithLabelValues(kind)
	}
	return m
}

// IdleCollectors are the instruments of an agent without --cluster: the
// same series, at zero, so that dashboards and alerts find them.
func IdleCollectors() []prometheus.Collector { return collectors(newMetrics()) }

func newVectors() *metrics {
	return &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mvlan_cluster_etcd_request_duration_seconds",
			Help:    "Duration of requests to etcd (cluster networks), answered or not, by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mvlan_cluster_etcd_errors_total",
			Help: "Requests to etcd that failed (not answered in time, refused), by operation.",
		}, []string{"op"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mvlan_cluster_conflicts_total",
			Help: "etcd transactions lost to another host (kind block: a block lease retried; claim: an exact address another host has).",
		}, []string{"kind"}),
		reclaimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mvlan_cluster_reclaimed_total",
			Help: "Blocks and claims of dead hosts this host gave back to the pool (after the grace period, with none of their addresses answering a probe), by kind.",
		}, []string{"kind"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mvlan_cluster_reclaim_refused_total",
			Help: "Reclaims of a dead host's block or claim not done because an address in it answered a probe, by kind.",
		}, []string{"kind"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mvlan_cluster_blocks_lost_total",
			Help: "Blocks this host held that etcd gave to the pool or another host while this host was away (fencing: they are no longer used here).",
		}),
		gaveBack: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mvlan_cluster_blocks_given_back_total",
			Help: "Blocks this host gave back to the pool after they held no address for a while (it keeps one per pool).",
		}),
		dad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mvlan_cluster_dad_conflicts_total",
			Help: "Attaches on cluster networks whose address answered a duplicate address probe on the wire (the address is set aside, the attach takes another or fails).",
		}),
	}
}

// Collectors are the client's instruments, to register with a registry.
func (c *Client) Collectors() []prometheus.Collector { return collectors(c.m) }

func collectors(m *metrics) []prometheus.Collector {
	return []prometheus.Collector{m.latency, m.errors, m.conflicts, m.reclaimed, m.refused, m.lost, m.gaveBack, m.dad}
}

// observe records one request of op that started at t0.
func (c *Client) observe(op string, t0 time.Time, err error) {
	c.m.latency.WithLabelValues(op).Observe(time.Since(t0).Seconds())
	if err != nil {
		c.m.errors.WithLabelValues(op).Inc()
	}
}

// CountDAD counts an attach whose address a probe found in use.
func (c *Client) CountDAD() { c.m.dad.Inc() }
