package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// benchEndpoints is how many containers BenchmarkEndpointCLI attaches.
var benchEndpoints = envInt("MVLAN_BENCH_ENDPOINTS", 1000)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkEndpointCLI measures attach (`mvlan run -d`) and detach
// (`mvlan rm -f`) as an operator runs them, one process per call, over
// benchEndpoints containers on one network: p50 and p99 latency and the
// time to attach them all. Run with -benchtime=1x.
func BenchmarkEndpointCLI(b *testing.B) {
	sb := nstest.NewSandbox(b)
	prefix := sb.Name + "-c"
	cleanupContainers(b, prefix)
	a := newAgent(b, sb)
	a.start()
	a.ok("network", "create", "--subnet=10.20.0.0/16", "-o", "parent=eth0", "bench")
	for b.Loop() {
		attach := make([]time.Duration, 0, benchEndpoints)
		start := time.Now()
		for i := range benchEndpoints {
			t0 := time.Now()
			a.ok("run", "-d", "--name", fmt.Sprintf("%s%d", prefix, i), "--net", "bench")
			attach = append(attach, time.Since(t0))
		}
		total := time.Since(start)
		detach := make([]time.Duration, 0, benchEndpoints)
		for i := range benchEndpoints {
			t0 := time.Now()
			a.ok("rm", "-f", fmt.Sprintf("%s%d", prefix, i))
			detach = append(detach, time.Since(t0))
		}
		b.ReportMetric(pct(attach, 50), "attach_p50_ms")
		b.ReportMetric(pct(attach, 99), "attach_p99_ms")
		b.ReportMetric(pct(detach, 50), "detach_p50_ms")
		b.ReportMetric(pct(detach, 99), "detach_p99_ms")
		b.ReportMetric(total.Seconds(), "attach_all_s")
	}
}

// pct returns the p-th percentile of ds in milliseconds.
func pct(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	return float64(s[max(i, 0)]) / float64(time.Millisecond)
}
