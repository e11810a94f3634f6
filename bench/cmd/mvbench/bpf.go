package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/mvlan/mvlan/loader"
)

// bpfReps is the fewest processes the bpf_ns medians are taken over.
const bpfReps = 15

// runBPF: the loader's BenchmarkProgram (BPF_PROG_TEST_RUN of each program
// on a legitimate 64- and 1500-byte frame, and of an empty TC program),
// one process per repetition so the programs interleave. ns per run is the
// kernel's own measure. It runs in a namespace of its own (the test run
// uses that namespace's loopback as the skb's device).
func runBPF(ctx context.Context, e *env, r *report) error {
	progress("bpf_ns: go test -c ./loader")
	bin, err := e.buildTest(ctx, "./loader")
	if err != nil {
		return err
	}
	ns, err := e.netns("bpf")
	if err != nil {
		return err
	}
	benchtime := "1000000x"
	if e.cfg.quick {
		benchtime = "100000x"
	}
	// A process takes well under a second; other tenants of a VM move
	// single runs by ±20%, so the medians are of at least bpfReps.
	reps := e.cfg.reps
	if !e.cfg.quick {
		reps = max(reps, bpfReps)
	}
	res := map[string]samples{} // "program/size" -> ns per run
	var progs []string
	for rep := range reps {
		lines, err := runBench(ctx, ns, bin, "^BenchmarkProgram$", benchtime)
		if err != nil {
			return err
		}
		var summary []string
		for _, l := range lines {
			name := strings.TrimPrefix(l.name, "BenchmarkProgram/")
			v, ok := l.metrics["ns/run"]
			if !ok {
				return fmt.Errorf("%s: no ns/run metric", l.name)
			}
			prog, size, _ := strings.Cut(name, "/")
			if !contains(progs, prog) {
				progs = append(progs, prog)
			}
			res[name] = append(res[name], v)
			if size == "64" {
				summary = append(summary, fmt.Sprintf("%s %.1f", prog, v))
			}
		}
		progress("bpf_ns %d/%d (ns, 64 B): %s", rep+1, reps, strings.Join(summary, ", "))
	}
	if !contains(progs, "empty") {
		return fmt.Errorf("BenchmarkProgram has no empty baseline")
	}
	empty64, empty1500 := res["empty/64"].median(), res["empty/1500"].median()
	s := r.section("bpf_ns: BPF_PROG_TEST_RUN, ns per run")
	s.para("The loader's `BenchmarkProgram`: each program on a legitimate frame (the full pass path: every check, every counter) "+
		"with BPF_PROG_TEST_RUN, repeat %s in one syscall, %d processes interleaving the programs; `empty` is a TC program that only returns. "+
		"Keys `bpf_ns.<program>` are the 64-byte medians. Target: every program within 2x of `empty`. %s", strings.TrimSuffix(benchtime, "x"), reps, endpointPathNote())
	t := s.table("program", "64 B median", "min", "max", "x empty", "1500 B median", "min", "max", "x empty")
	for _, p := range progs {
		a, b := res[p+"/64"], res[p+"/1500"]
		row := append([]string{"`" + p + "`"}, statCells(a)[:3]...)
		row = append(row, fmt.Sprintf("%.2f", a.median()/empty64))
		row = append(row, statCells(b)[:3]...)
		row = append(row, fmt.Sprintf("%.2f", b.median()/empty1500))
		t.row(row...)
		r.set("bpf_ns."+p, a.median())
		if p == "empty" {
			continue
		}
		x64, x1500 := a.median()/empty64, b.median()/empty1500
		r.target(fmt.Sprintf("bpf_ns.%s within 2x of empty", p),
			fmt.Sprintf("%.2fx (64 B), %.2fx (1500 B)", x64, x1500), "<= 2x", x64 <= 2 && x1500 <= 2)
	}
	return nil
}

// endpointPathNote says which endpoint programs BenchmarkProgram ran: the
// loader's choice on this kernel (loader.EndpointPath).
func endpointPathNote() string {
	if loader.HaveDirectPath() {
		return "The endpoint programs are the direct path's (they read their device's namespace; no stub, no tail call), as the agent runs them on this kernel."
	}
	return "The endpoint programs run through a stub per namespace (its tail call included), as the agent runs them on this kernel (no bpf_cast_to_kern_ctx)."
}
