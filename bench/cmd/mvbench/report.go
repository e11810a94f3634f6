package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// report collects the results: numbers for results.json under the issue's
// keys, and tables and targets for the markdown.
type report struct {
	cfg         config
	results     map[string]any // nested by the dots of the keys
	sections    []*mdSection
	targets     []target
	sectionTime map[string]time.Duration
	loadStart   string
	machine     [][2]string // machineInfo at the start: git describe before the run writes its files
	calib       string      // the machine's calibrations at start / end (calibrations)
}

type mdSection struct {
	title  string
	blocks []any // string (a paragraph) or *mdTable
}

type mdTable struct {
	header []string
	rows   [][]string
}

type target struct {
	what, value, limit string
	met                bool
}

func newReport(cfg config) *report {
	return &report{cfg: cfg, results: map[string]any{}, sectionTime: map[string]time.Duration{}, loadStart: loadAvg(), machine: machineInfo(cfg)}
}

// set records a result under a dotted key (bpf_ns.empty).
func (r *report) set(key string, v float64) {
	parts := strings.Split(key, ".")
	m := r.results
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	m[parts[len(parts)-1]] = roundSig(v, 5)
}

func roundSig(v float64, digits int) float64 {
	if v == 0 {
		return 0
	}
	p := math.Pow(10, float64(digits)-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

func (r *report) section(title string) *mdSection {
	s := &mdSection{title: title}
	r.sections = append(r.sections, s)
	return s
}

func (s *mdSection) para(format string, args ...any) {
	s.blocks = append(s.blocks, fmt.Sprintf(format, args...))
}

func (s *mdSection) table(header ...string) *mdTable {
	t := &mdTable{header: header}
	s.blocks = append(s.blocks, t)
	return t
}

func (t *mdTable) row(cells ...string) { t.rows = append(t.rows, cells) }

// target records whether a target is met.
func (r *report) target(what, value, limit string, met bool) {
	r.targets = append(r.targets, target{what, value, limit, met})
}

// num formats a value with about three significant digits.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// statCells are median, min, max and n of s.
func statCells(s samples) []string {
	return []string{num(s.median()), num(s.min()), num(s.max()), fmt.Sprint(len(s))}
}

func yes(met bool) string {
	if met {
		return "met"
	}
	return "**missed**"
}

func (r *report) write() error {
	for _, p := range []string{r.cfg.jsonPath, r.cfg.mdPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(r.results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(r.cfg.jsonPath, append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(r.cfg.mdPath, r.markdown(), 0o644)
}

func (r *report) markdown() []byte {
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	w("Written by `make bench` (`bench/cmd/mvbench`, issues 8 and 12) on %s; the numbers are in `%s`. ",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), r.cfg.jsonPath)
	w("Each value is the median of its repetitions (min and max beside it); comparisons ran interleaved (A B A B ...). ")
	if r.cfg.quick {
		w("\n\n**Quick smoke run (BENCH_QUICK=1): few repetitions and endpoints; not for comparison.**")
	}
	w("\n\n## Reproduce\n\n```\n")
	w("sudo make bench                          # as root: everything, about 10-15 minutes on 2 cores\n")
	w("sudo BENCH_QUICK=1 make bench            # smoke run (3 reps, 50 endpoints, 1 s runs) -> bench/out/\n")
	w("sudo MVLAN_BENCH_ENDPOINTS=200 BENCH_REPS=7 make bench   # other sizes\n")
	w("go run ./bench/cmd/mvbench -h            # flags (-only datapath,... writes to bench/out/)\n```\n\n")
	w("Needs iperf3 (`apt-get install -y iperf3`), iproute2, nsenter, and the Go module proxy once (the CNI plugins of the control section's anchor are built into bench/cache/). Everything runs in network namespaces named `mvt-<hex>-*` that the run creates and deletes.\n\n")

	w("## Machine\n\n| | |\n| --- | --- |\n")
	for _, kv := range r.machine {
		w("| %s | %s |\n", kv[0], kv[1])
	}
	w("| load average at start / end | %s / %s |\n", r.loadStart, loadAvg())
	if r.calib != "" {
		w("| calibration at start / end | %s |\n", r.calib)
	}
	w("| run | %d repetitions, %d datapath rounds, %d endpoints; took %s |\n\n", r.cfg.reps, dpRounds(r.cfg), r.cfg.endpoints, time.Since(startTime).Round(time.Second))
	if len(r.targets) > 0 {
		met := 0
		for _, t := range r.targets {
			if t.met {
				met++
			}
		}
		w("## Targets (%d of %d met)\n\n| target | value | limit | |\n| --- | --- | --- | --- |\n", met, len(r.targets))
		for _, t := range r.targets {
			w("| %s | %s | %s | %s |\n", t.what, t.value, t.limit, yes(t.met))
		}
		w("\n")
	}
	for _, s := range r.sections {
		w("## %s\n\n", s.title)
		for _, blk := range s.blocks {
			switch v := blk.(type) {
			case string:
				w("%s\n\n", v)
			case *mdTable:
				w("| %s |\n|%s\n", strings.Join(v.header, " | "), strings.Repeat(" --- |", len(v.header)))
				for _, row := range v.rows {
					w("| %s |\n", strings.Join(row, " | "))
				}
				w("\n")
			}
		}
	}
	return b.Bytes()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machineInfo(cfg config) [][2]string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	kernel := unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:])
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	_ = unix.Sysinfo(&si)
	out := func(name string, args ...string) string {
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	return [][2]string{
		{"kernel", kernel},
		{"CPU", fmt.Sprintf("%s, %d CPUs online", cpu, runtime.NumCPU())},
		{"memory", fmt.Sprintf("%d MiB", uint64(si.Totalram)*uint64(si.Unit)>>20)},
		{"mvlan", out(cfg.mvlan, "--version") + " (git " + out("git", "describe", "--always", "--dirty") + ")"},
		{"Go", runtime.Version()},
		{"iperf3", out("iperf3", "--version")},
	}
}
