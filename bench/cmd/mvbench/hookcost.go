package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mvlan/mvlan/internal/nstest"
)

// The hooks section (-only hooks, never part of a full run) takes the
// datapath section's 64-byte UDP gap between mvlan_tcx and empty_tcx
// apart: in mvlan's own datapath (an agent with --attach-mode tcx and no
// tamper check), the empty program is put first on one hook at a time,
// where it ends the hook's chain (TCX_PASS) before mvlan's program runs.
// What a hook's bypass gains is what mvlan's program there costs; all
// hooks bypassed is mvlan's set-up with the empty programs' cost. Then
// the programs' own time in place, from the kernel's run time
// statistics (bpfstats.go).

// bypass names one of mvlan's hooks in a datapath: the namespace (the
// client's, the server's or the parent's) and the direction.
type bypass struct {
	name  string
	hooks func(p *dpPair) []hook
}

type hook struct {
	ns string
	at ebpf.AttachType
}

var bypasses = []bypass{
	{"none", func(*dpPair) []hook { return nil }},
	{"ep_egress (client)", func(p *dpPair) []hook { return []hook{{p.client, ebpf.AttachTCXEgress}} }},
	{"parent_ingress", func(p *dpPair) []hook { return []hook{{p.host, ebpf.AttachTCXIngress}} }},
	{"ep_ingress (server)", func(p *dpPair) []hook { return []hook{{p.server, ebpf.AttachTCXIngress}} }},
	{"the three a frame passes", func(p *dpPair) []hook {
		return []hook{{p.client, ebpf.AttachTCXEgress}, {p.host, ebpf.AttachTCXIngress}, {p.server, ebpf.AttachTCXIngress}}
	}},
	{"all six hooks", func(p *dpPair) []hook {
		var hs []hook
		for _, ns := range []string{p.client, p.server, p.host} {
			hs = append(hs, hook{ns, ebpf.AttachTCXIngress}, hook{ns, ebpf.AttachTCXEgress})
		}
		return hs
	}},
}

// hookSet is the section's three datapaths and the empty program.
type hookSet struct {
	mac, empty, mv *dpPair
	prog           *ebpf.Program
}

// runHooks measures, in rounds: plain macvlan, empty_tcx, and mvlan_tcx
// with each bypass in turn; then the programs' time in place.
func runHooks(ctx context.Context, e *env, r *report) error {
	var h hookSet
	var err error
	if h.mac, err = setupMacvlan(ctx, e); err != nil {
		return err
	}
	if h.empty, err = setupEmptyHooks(e, "tcx", "x", "10.98.4"); err != nil {
		return err
	}
	if h.mv, err = setupMvlan(ctx, e, "mvlan_tcx", "t", "10.98.1", "--attach-mode", "tcx", "--tamper-check", "0"); err != nil {
		return err
	}
	if h.prog, err = emptyProgram(e); err != nil {
		return err
	}
	keys := []string{"macvlan", "empty_tcx"}
	for _, b := range bypasses {
		keys = append(keys, "mvlan_tcx, bypassed: "+b.name)
	}
	rates, err := h.rounds(ctx, keys, dpRounds(e.cfg))
	if err != nil {
		return err
	}
	st, err := h.inPlace(ctx, []string{"empty_tcx", keys[2]})
	if err != nil {
		return err
	}
	writeHooks(r, keys, rates, st, dpRounds(e.cfg))
	return nil
}

// rounds measures every key once a round, the order rotating.
func (h hookSet) rounds(ctx context.Context, keys []string, n int) (map[string]samples, error) {
	rates := map[string]samples{}
	for round := range n {
		var line []string
		for i := range keys {
			k := keys[(i+round)%len(keys)]
			rx, err := h.measure(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			rates[k] = append(rates[k], rx/1e3)
			line = append(line, fmt.Sprintf("%s %.0f", k, rx/1e3))
		}
		progress("hooks round %d: UDP 64 B kpps: %s", round+1, strings.Join(line, ", "))
	}
	return rates, nil
}

// writeHooks reports the rates (keys[2] is mvlan_tcx without a bypass,
// what the paired column divides by) and the time in place.
func writeHooks(r *report, keys []string, rates map[string]samples, st *runStats, rounds int) {
	s := r.section("hooks: where mvlan_tcx's 64-byte UDP time goes, hook by hook")
	s.para("mvlan_tcx as in the datapath section (agent with `--tamper-check 0`), with the empty program attached first on the named hooks "+
		"(`BPF_F_BEFORE` of all): it returns TCX_PASS, so mvlan's program there does not run. %d rounds of 1 s, the order rotating. "+
		"*paired*: the median over the rounds of the rate over the same round's `mvlan_tcx, bypassed: none`. "+
		"With ep_egress bypassed, parent_ingress finds no verdict and takes its full path (include/eastwest.h).", rounds)
	t := s.table("datapath", "UDP 64 B kpps", "min", "max", "n", "x macvlan", "x empty_tcx", "paired x none")
	none := rates[keys[2]]
	for _, k := range keys {
		var paired samples
		for i, v := range rates[k] {
			paired = append(paired, v/none[i])
		}
		row := append([]string{k}, statCells(rates[k])...)
		row = append(row, fmt.Sprintf("%.3f", rates[k].median()/rates["macvlan"].median()),
			fmt.Sprintf("%.3f", rates[k].median()/rates["empty_tcx"].median()), fmt.Sprintf("%.3f", paired.median()))
		t.row(row...)
	}
	s.para("In place: the kernel's run time statistics (BPF_ENABLE_STATS: sched_clock around each run, which adds the same to every program) " +
		"over three more runs of each of these two, after the rounds (the timing slows them), against BPF_PROG_TEST_RUN's warm loop in the bpf_ns section.")
	t = s.table("datapath", "program", "runs", "ns per run")
	for _, k := range []string{"empty_tcx", keys[2]} {
		for _, row := range st.rows(k) {
			t.row(append([]string{k}, row...)...)
		}
	}
}

// inPlace runs each key three times, in turn, with the kernel's run time
// statistics on, and returns what its programs took.
func (h hookSet) inPlace(ctx context.Context, keys []string) (st *runStats, err error) {
	if st, err = enableRunStats(); err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	for range 3 {
		for _, k := range keys {
			before := st.snapshot()
			if _, err := h.measure(ctx, k); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			st.add(k, before, st.snapshot())
		}
	}
	return st, nil
}

// measure measures one key's datapath once: datagrams received a second.
func (h hookSet) measure(ctx context.Context, key string) (float64, error) {
	switch key {
	case "macvlan":
		rx, _, err := udpRate(ctx, h.mac, 300*time.Millisecond, time.Second)
		return rx, err
	case "empty_tcx":
		rx, _, err := udpRate(ctx, h.empty, 300*time.Millisecond, time.Second)
		return rx, err
	}
	for _, b := range bypasses {
		if key != "mvlan_tcx, bypassed: "+b.name {
			continue
		}
		undo, err := attachFirst(h.prog, b.hooks(h.mv))
		if err != nil {
			return 0, errors.Join(err, undo())
		}
		rx, _, err := udpRate(ctx, h.mv, 300*time.Millisecond, time.Second)
		return rx, errors.Join(err, undo())
	}
	return 0, fmt.Errorf("unknown datapath %q", key)
}

// attachFirst attaches prog before every program on each hook's eth0;
// undo detaches them.
func attachFirst(prog *ebpf.Program, hooks []hook) (undo func() error, err error) {
	var links []link.Link
	undo = func() error {
		var errs []error
		for _, l := range links {
			errs = append(errs, l.Close())
		}
		return errors.Join(errs...)
	}
	for _, h := range hooks {
		err := nstest.In(h.ns, func() error {
			iface, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			l, err := link.AttachTCX(link.TCXOptions{Interface: iface.Index, Program: prog, Attach: h.at, Anchor: link.Head()})
			if err != nil {
				return err
			}
			links = append(links, l)
			return nil
		})
		if err != nil {
			return undo, fmt.Errorf("attach first in %s: %w", h.ns, err)
		}
	}
	return undo, nil
}
