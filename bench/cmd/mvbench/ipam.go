package main

import (
	"context"
	"fmt"
	"strings"
)

// ipamBench maps one Go benchmark of the ipam package to a result key.
type ipamBench struct {
	name             string // BenchmarkX
	full, quick      string // -benchtime
	metric           string // unit read from the result line
	scale            float64
	key, label, unit string
	limit            float64
	atLeast          bool // the target is a minimum, not a maximum
	limitText        string
}

var ipamBenches = []ipamBench{
	{"BenchmarkFillSlash16", "20x", "5x", "ns/op", 1e-6, "ipam.fill_slash16_ms", "fill a /16 (65534 allocations)", "ms", 20, false, "< 20 ms"},
	{"BenchmarkAlloc1MSlash12", "3x", "1x", "ns/op", 1e-9, "ipam.alloc_1m_slash12_s", "1M allocations in a /12", "s", 0.5, false, "< 0.5 s"},
	{"BenchmarkAlloc1MV6", "2x", "1x", "ns/op", 1e-9, "ipam.alloc_1m_v6_s", "1M allocations in a /64 (own owner each)", "s", 1, false, "< 1 s"},
	{"BenchmarkAlloc1MV6", "", "", "heap-MiB", 1, "ipam.alloc_1m_v6_mib", "heap held by those 1M", "MiB", 64, false, "< 64 MiB"},
	{"BenchmarkSteadyReleaseRealloc", "3000000x", "1000000x", "Mops/s", 1, "ipam.steady_mops", "release + reallocate, /16 with 60000 held", "M ops/s", 5, true, ">= 5 M ops/s"},
	{"BenchmarkLoad1M", "3x", "1x", "ns/op", 1e-9, "ipam.load_1m_s", "Load of 1M held addresses", "s", 1, false, "well under 1 s"},
}

// runIPAM: the ipam package's benchmarks, each repetition one process per
// benchmark, the benchmarks taking turns.
func runIPAM(ctx context.Context, e *env, r *report) error {
	progress("ipam: go test -c ./ipam")
	bin, err := e.buildTest(ctx, "./ipam")
	if err != nil {
		return err
	}
	res := map[string]samples{} // key -> values
	for rep := range e.cfg.reps {
		var summary []string
		for i, b := range ipamBenches {
			if b.full == "" {
				continue // another metric of the line before
			}
			bt := b.full
			if e.cfg.quick {
				bt = b.quick
			}
			lines, err := runBench(ctx, "", bin, "^"+b.name+"$", bt)
			if err != nil {
				return err
			}
			for _, o := range ipamBenches[i:] {
				if o.name != b.name {
					break
				}
				v, ok := lines[0].metrics[o.metric]
				if !ok {
					return fmt.Errorf("%s: no %s in its result", o.name, o.metric)
				}
				res[o.key] = append(res[o.key], v*o.scale)
				summary = append(summary, fmt.Sprintf("%s %s %s", strings.TrimPrefix(o.key, "ipam."), num(v*o.scale), o.unit))
			}
		}
		progress("ipam %d/%d: %s", rep+1, e.cfg.reps, strings.Join(summary, ", "))
	}
	s := r.section("ipam: address allocation (Go benchmarks of ./ipam)")
	s.para("`go test -bench` of `ipam/bench_test.go`, one process per benchmark and repetition, the benchmarks taking turns. Targets from issue 3.")
	t := s.table("measurement", "key", "median", "min", "max", "n", "unit", "target", "")
	for _, b := range ipamBenches {
		v := res[b.key]
		met := v.median() < b.limit
		if b.atLeast {
			met = v.median() >= b.limit
		}
		key := "`" + b.key + "`"
		if b.key == "ipam.load_1m_s" {
			key = "— (md only)"
		} else {
			r.set(b.key, v.median())
		}
		t.row(append(append([]string{b.label, key}, statCells(v)...), b.unit, b.limitText, yes(met))...)
		r.target(b.label, num(v.median())+" "+b.unit, b.limitText, met)
	}
	return nil
}
