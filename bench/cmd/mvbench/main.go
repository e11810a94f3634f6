// Command mvbench is `make bench`: it runs every measurement of mvlan's
// benchmark suite in one go and writes bench/results.json (the keys of
// issues 8 and 12, numbers only) and docs/benchmarks.md (a table per section, the
// machine, the targets and whether each is met).
//
// Sections: bpf_ns (BPF_PROG_TEST_RUN of each program next to an empty
// one, from the loader's Go benchmark), datapath (TCP throughput and
// 64-byte UDP packet rate between two endpoints: plain macvlan, mvlan with
// TCX, mvlan with tc, Linux bridge + veth), control (attach and detach
// through the CLI interleaved with the reference CNI plugins through
// cnitool, the same through the API one by one and from 8 clients at once,
// restart with 1000 endpoints, /metrics scrapes), ipam (the ipam package's Go
// benchmarks), cli (the CLI's start) and cluster (attach on a network of
// scope cluster vs a local one, allocations with three hosts contending). Comparisons are interleaved (A B A B ...) and each value is
// the median of its repetitions, shown with min and max.
//
// It needs root, builds everything in network namespaces named
// mvt-<8 hex>-..., never touches the interfaces of the namespace it runs
// in, and removes what it made (namespaces, agents, bpffs mounts, iperf3)
// on exit, Ctrl-C included.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the command line and the environment ask for.
type config struct {
	mvlan     string // the mvlan binary under test
	jsonPath  string
	mdPath    string
	quick     bool
	reps      int  // repetitions of each measurement
	endpoints int  // endpoints of the control section
	secs      int  // seconds per throughput run
	profile   bool // perf profiles of extra runs
	only      map[string]bool
}

var sectionNames = []string{"bpf_ns", "datapath", "control", "ipam", "cli", "cluster"}

// optInSections run only when -only names them: cni is the control
// section's CNI anchor alone, for comparing builds of mvlan-cni quickly;
// hooks takes the datapath's UDP gap apart (hookcost.go).
var optInSections = []string{"cni", "hooks"}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mvbench:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "mvbench:", err)
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func parseFlags() (config, error) {
	var cfg config
	quick := os.Getenv("BENCH_QUICK") != "" && os.Getenv("BENCH_QUICK") != "0"
	flag.StringVar(&cfg.mvlan, "mvlan", "bin/mvlan", "the mvlan binary to measure")
	flag.StringVar(&cfg.jsonPath, "json", "", "results file (default bench/results.json; bench/out/results.json for quick or partial runs)")
	flag.StringVar(&cfg.mdPath, "md", "", "report file (default docs/benchmarks.md; bench/out/benchmarks.md for quick or partial runs)")
	flag.BoolVar(&cfg.quick, "quick", quick, "smoke run: fewer repetitions and endpoints, short runs (env BENCH_QUICK=1)")
	flag.IntVar(&cfg.reps, "reps", 0, "repetitions per measurement (env BENCH_REPS; default 5, quick 3)")
	flag.IntVar(&cfg.endpoints, "endpoints", 0, "endpoints of the control section (env MVLAN_BENCH_ENDPOINTS; default 1000, quick 50)")
	flag.IntVar(&cfg.secs, "secs", 0, "seconds per profiled UDP run and per iperf3 UDP reference run, at most 2 (default 3, quick 1); the measured TCP and UDP runs take 1 s each")
	flag.BoolVar(&cfg.profile, "profile", os.Getenv("BENCH_PROFILE") != "", "after the measurements, record perf profiles of extra runs (UDP per datapath, scrape, restart) next to the report (env BENCH_PROFILE=1)")
	only := flag.String("only", "", "comma-separated sections to run: "+strings.Join(sectionNames, ",")+"; or (never in a full run) cni: the control section's CNI anchor alone, hooks: mvlan_tcx's UDP rate with its programs bypassed hook by hook")
	flag.Parse()
	if flag.NArg() > 0 {
		return cfg, fmt.Errorf("no arguments expected, got %q", flag.Args())
	}
	if cfg.reps == 0 {
		cfg.reps = envInt("BENCH_REPS", map[bool]int{false: 5, true: 3}[cfg.quick])
	}
	if cfg.endpoints == 0 {
		cfg.endpoints = envInt("MVLAN_BENCH_ENDPOINTS", map[bool]int{false: 1000, true: 50}[cfg.quick])
	}
	if cfg.secs == 0 {
		cfg.secs = map[bool]int{false: 3, true: 1}[cfg.quick]
	}
	if cfg.reps < 1 || cfg.endpoints < 10 || cfg.secs < 1 {
		return cfg, errors.New("-reps must be >= 1, -endpoints >= 10 and -secs >= 1")
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !contains(sectionNames, s) && !contains(optInSections, s) {
			return cfg, fmt.Errorf("-only: unknown section %q; use %s", s, strings.Join(append(sectionNames, optInSections...), ","))
		}
		cfg.only[s] = true
	}
	if cfg.only["cni"] && cfg.only["control"] {
		return cfg, errors.New("-only: cni is the control section's anchor alone; give one of cni and control")
	}
	partial := cfg.quick || len(cfg.only) > 0
	if cfg.jsonPath == "" {
		cfg.jsonPath = map[bool]string{false: "bench/results.json", true: "bench/out/results.json"}[partial]
	}
	if cfg.mdPath == "" {
		cfg.mdPath = map[bool]string{false: "docs/benchmarks.md", true: "bench/out/benchmarks.md"}[partial]
	}
	return cfg, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c config) want(section string) bool {
	if contains(optInSections, section) {
		return c.only[section]
	}
	return len(c.only) == 0 || c.only[section]
}

func run(cfg config) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces, runs agents and loads BPF programs")
	}
	for _, tool := range []string{"ip", "nsenter", "iperf3", "go"} {
		if tool == "iperf3" && !cfg.want("datapath") {
			continue
		}
		if _, err := lookPath(tool); err != nil {
			hint := ""
			if tool == "iperf3" {
				hint = " (apt-get install -y iperf3)"
			}
			return fmt.Errorf("%s not found in PATH%s", tool, hint)
		}
	}
	if cfg.mvlan, err = filepath.Abs(cfg.mvlan); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.mvlan); err != nil {
		return fmt.Errorf("mvlan binary: %w (make build makes bin/mvlan)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e, err := newEnv(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			e.cleanup()
			panic(p)
		}
		e.cleanup()
	}()
	r := newReport(cfg)
	calStart := calibrate()
	progress("mvbench: %d repetitions, %d endpoints, %d s runs%s; namespaces %s-*", cfg.reps, cfg.endpoints, cfg.secs,
		map[bool]string{false: "", true: " (quick)"}[cfg.quick], e.base)
	steps := []struct {
		name string
		fn   func(context.Context, *env, *report) error
	}{
		{"bpf_ns", runBPF},
		{"datapath", runDatapath},
		{"control", runControl},
		{"cni", runCNI},
		{"hooks", runHooks},
		{"ipam", runIPAM},
		{"cli", runCLI},
		{"cluster", runCluster},
	}
	for _, s := range steps {
		if !cfg.want(s.name) {
			continue
		}
		t0 := time.Now()
		progress("== %s", s.name)
		if err := s.fn(ctx, e, r); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		progress("== %s done in %s", s.name, time.Since(t0).Round(time.Second))
		r.sectionTime[s.name] = time.Since(t0)
	}
	r.calibrations(calStart, calibrate())
	progress("calibration at start / end: %s", r.calib)
	if err := r.write(); err != nil {
		return err
	}
	progress("wrote %s and %s in %s", cfg.jsonPath, cfg.mdPath, time.Since(startTime).Round(time.Second))
	return nil
}

var startTime = time.Now()

// progress prints a line of progress on stderr with the time since start.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(startTime).Seconds(), fmt.Sprintf(format, args...))
}
