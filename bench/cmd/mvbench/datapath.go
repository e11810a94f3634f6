package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// dpPair is one datapath under test: two endpoints in their own
// namespaces, the client sending to the server.
type dpPair struct {
	key            string
	client, server string // namespace paths
	host           string // namespace of the parent (eth0), when there is one
	serverIP       netip.Addr
	note           string // what the set-up found (attach mode, ...)
}

const iperfPort = "5201"

// runDatapath: two endpoints of one network, TCP throughput (iperf3) and
// 64-byte UDP packet rate, for plain macvlan, mvlan (TCX), mvlan (tc) and
// a Linux bridge with veth pairs; the four take turns in each repetition.
func runDatapath(ctx context.Context, e *env, r *report) error {
	var pairs []*dpPair
	for _, setup := range []func(context.Context, *env) (*dpPair, error){
		setupMacvlan,
		func(ctx context.Context, e *env) (*dpPair, error) {
			return setupMvlan(ctx, e, "mvlan_tcx", "t", "10.98.1", "--attach-mode", "tcx")
		},
		func(ctx context.Context, e *env) (*dpPair, error) {
			return setupMvlan(ctx, e, "mvlan_tc", "k", "10.98.2", "--attach-mode", "tc")
		},
		setupBridge,
		func(_ context.Context, e *env) (*dpPair, error) { return setupEmptyHooks(e, "tcx", "x", "10.98.4") },
		func(_ context.Context, e *env) (*dpPair, error) { return setupEmptyHooks(e, "tc", "y", "10.98.5") },
	} {
		p, err := setup(ctx, e)
		if err != nil {
			return err
		}
		if err := e.iperfServer(p); err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
		progress("datapath: %s ready (%s)", p.key, p.note)
		pairs = append(pairs, p)
	}
	res := dpResults{tcp: map[string]samples{}, udp: map[string]samples{}, iperfUDP: map[string]samples{}}
	tcp, udp, iperfUDP := res.tcp, res.udp, res.iperfUDP
	secs := time.Duration(e.cfg.secs) * time.Second
	iperfUDPSecs := min(e.cfg.secs, 2)
	rounds := dpRounds(e.cfg)
	for round := range rounds {
		ref := 0
		if round < e.cfg.reps {
			ref = iperfUDPSecs
		}
		if err := res.round(ctx, pairs, round, ref); err != nil {
			return err
		}
	}
	if prof := e.profiler(); prof != nil {
		for _, p := range pairs {
			stop := prof.start("udp-"+p.key, 0, filepath.Base(os.Args[0]))
			_, _, err := udpRate(ctx, p, 300*time.Millisecond, secs)
			stop()
			if err != nil {
				return err
			}
		}
	}

	s := r.section("datapath: two endpoints of one network")
	s.para("Client and server are two endpoints in their own namespaces on one network. " +
		"`macvlan`: two macvlan (bridge mode) slaves of a veth made with `ip`, no programs, no agent (the limit). " +
		"`mvlan_tcx` / `mvlan_tc`: an agent with `--attach-mode tcx` / `--attach-mode tc` (the default, auto, is TCX on the parents and tc on the endpoints) in a namespace of its own, " +
		"`mvlan network create -o parent=eth0` and two `mvlan run -d` (the endpoint programs on both slaves). " +
		"`bridge_veth`: a Linux bridge in a third namespace with a veth pair to each endpoint (Docker's default bridge datapath). " +
		"`empty_tcx` / `empty_tc`: `macvlan` with a program that only returns on each hook mvlan uses (the parent's and both slaves' ingress and egress), " +
		"attached with TCX / clsact + cls_bpf: the hooks' own cost, the floor under `mvlan_tcx` / `mvlan_tc`. " +
		"IPv6 is off everywhere (as mvlan does on IPv4-only endpoints).")
	s.para("%d rounds, each datapath once per round in turn (the order rotating), each time TCP: `iperf3 -c -t 1 -A C,C`, one stream, client and server on one CPU (C: the round modulo the CPUs), receiver's Gbit/s "+
		"(left to the scheduler, the two shared a CPU in some runs and not in others, and a run's rate followed that more than the datapath: "+
		"about 12 or 29 Gbit/s on the 2-CPU VM this was chosen on); "+
		"and UDP: 1 s of 64-byte UDP payloads (106-byte frames) sent with "+
		"sendmmsg (64 per call) from one socket and received with recvmmsg on the other (mvbench's own blaster, after a 0.3 s warm-up); "+
		"kpps counted by the receiver; the medians over the rounds. Many short rounds rather than a few long runs: on this VM a run's rate "+
		"moves by ±15%% or more from one run to the next whatever its length, so the medians settle only with the number of runs. "+
		"`iperf3 -u -l 64 -b 0 -t %d` (in the first %d rounds) is shown too: its sender makes about one syscall per packet plus "+
		"its own timing, and its receiver loses packets at the socket, so it measures iperf3 more than the datapath "+
		"(for reference only), which is why the key comes from the blaster.%s", rounds, iperfUDPSecs, e.cfg.reps, e.profiler().note())
	t := s.table("datapath", "TCP Gbit/s", "min", "max", "x macvlan", "UDP 64 B kpps", "min", "max", "x macvlan", "iperf3 UDP kpps (recv)", "set-up")
	base := pairs[0].key
	for _, p := range pairs {
		row := []string{"`" + p.key + "`"}
		row = append(row, statCells(tcp[p.key])[:3]...)
		row = append(row, fmt.Sprintf("%.3f", tcp[p.key].median()/tcp[base].median()))
		row = append(row, statCells(udp[p.key])[:3]...)
		row = append(row, fmt.Sprintf("%.3f", udp[p.key].median()/udp[base].median()))
		row = append(row, num(iperfUDP[p.key].median()), p.note)
		t.row(row...)
		r.set("datapath.tcp_gbps."+p.key, tcp[p.key].median())
		r.set("datapath.udp64_kpps."+p.key, udp[p.key].median())
	}
	for _, m := range []string{"mvlan_tcx", "mvlan_tc"} {
		xt, xu := tcp[m].median()/tcp[base].median(), udp[m].median()/udp[base].median()
		r.target(fmt.Sprintf("datapath TCP %s / macvlan", m), fmt.Sprintf("%.3f", xt), ">= 0.98", xt >= 0.98)
		r.target(fmt.Sprintf("datapath UDP 64 B %s / macvlan", m), fmt.Sprintf("%.3f", xu), ">= 0.95", xu >= 0.95)
	}
	for _, m := range []string{"tcx", "tc"} {
		f := udp["empty_"+m].median()
		r.set("datapath.udp64_mvlan_vs_empty."+m, udp["mvlan_"+m].median()/f)
		s.para("UDP 64 B: `mvlan_%s` / `empty_%s` %.3f; `empty_%s` / `macvlan` %.3f.", m, m, udp["mvlan_"+m].median()/f, m, f/udp[base].median())
	}
	bt, bu := tcp["mvlan_tcx"].median()/tcp["bridge_veth"].median(), udp["mvlan_tcx"].median()/udp["bridge_veth"].median()
	r.target("datapath TCP mvlan_tcx / bridge_veth", fmt.Sprintf("%.3f", bt), ">= 1", bt >= 1)
	r.target("datapath UDP 64 B mvlan_tcx / bridge_veth", fmt.Sprintf("%.3f", bu), ">= 1", bu >= 1)
	return nil
}

// setupMacvlan: a sandbox whose eth0 (a veth to the wire) is the parent
// of two macvlan slaves moved into two namespaces: no agent, no programs.
func setupMacvlan(_ context.Context, e *env) (*dpPair, error) {
	p, _, err := macvlanPair(e, "macvlan", "m", "10.98.0")
	if err == nil {
		p.note = "macvlan bridge mode on a veth"
	}
	return p, err
}

// macvlanPair makes setupMacvlan's datapath under key, with namespaces
// named after tag and addresses prefix.11 and .12; it returns the
// namespace of the parent (eth0) too.
func macvlanPair(e *env, key, tag, prefix string) (*dpPair, string, error) {
	sb, err := e.sandbox(tag)
	if err != nil {
		return nil, "", err
	}
	p := &dpPair{key: key, serverIP: netip.MustParseAddr(prefix + ".12"), host: sb.host}
	for i, suffix := range []string{tag + "1", tag + "2"} {
		ns, err := e.netns(suffix)
		if err != nil {
			return nil, "", err
		}
		slave := "mv" + suffix
		if err := errors.Join(noIPv6(ns),
			nsRunAll(sb.host,
				[]string{"ip", "link", "add", "link", "eth0", "name", slave, "type", "macvlan", "mode", "bridge"},
				[]string{"ip", "link", "set", slave, "netns", filepath.Base(ns)}),
		); err != nil {
			return nil, "", err
		}
		if err := nsRunAll(ns,
			[]string{"ip", "link", "set", slave, "name", "eth0"},
			[]string{"ip", "addr", "add", fmt.Sprintf("%s.%d/24", prefix, 11+i), "dev", "eth0"},
			[]string{"ip", "link", "set", "eth0", "up"}); err != nil {
			return nil, "", err
		}
		if i == 0 {
			p.client = ns
		} else {
			p.server = ns
		}
	}
	return p, sb.host, errors.Join(noIPv6(sb.host), noIPv6(sb.wire))
}

// setupMvlan: an agent (extra flags: its attach mode) in a sandbox, a
// network on the sandbox's eth0 and two containers made with `mvlan run -d`.
func setupMvlan(ctx context.Context, e *env, key, tag, prefix string, extra ...string) (*dpPair, error) {
	sb, err := e.sandbox(tag)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(noIPv6(sb.host), noIPv6(sb.wire)); err != nil {
		return nil, err
	}
	a := e.newAgent("dp-"+tag, sb.host, "127.0.0.1:9469", extra...)
	if _, err := a.start(ctx); err != nil {
		return nil, err
	}
	if _, _, err := a.mv(ctx, "network", "create", "--subnet="+prefix+".0/24", "-o", "parent=eth0", "dp"); err != nil {
		return nil, err
	}
	p := &dpPair{key: key, serverIP: netip.MustParseAddr(prefix + ".12"), host: sb.host}
	for i, suffix := range []string{tag + "1", tag + "2"} {
		name := e.base + "-" + suffix
		if _, _, err := a.mv(ctx, "run", "-d", "--name", name, "--net", "dp", "--ip", fmt.Sprintf("%s.%d", prefix, 11+i)); err != nil {
			return nil, err
		}
		ns := filepath.Join("/run/netns", name)
		if i == 0 {
			p.client = ns
		} else {
			p.server = ns
		}
	}
	// What is attached, from the agent's own metrics.
	sc := newScraper(sb.host, "127.0.0.1:9469")
	defer sc.close()
	body, _, err := sc.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", key, err)
	}
	modes := map[string]int{}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "mvlan_attach_info{") && strings.Contains(line, e.base+"-"+tag) {
			_, m, _ := strings.Cut(line, `mode="`)
			m, _, _ = strings.Cut(m, `"`)
			modes[m]++
		}
	}
	if len(modes) == 0 {
		return nil, fmt.Errorf("%s: no endpoint program attached (mvlan_attach_info)", key)
	}
	var parts []string
	for m, n := range modes {
		parts = append(parts, fmt.Sprintf("%d endpoint programs attached with %s", n, m))
	}
	p.note = strings.Join(parts, ", ")
	return p, nil
}

// setupBridge: a bridge in a namespace of its own with a veth pair to each
// of two namespaces.
func setupBridge(_ context.Context, e *env) (*dpPair, error) {
	h, err := e.netns("bh")
	if err != nil {
		return nil, err
	}
	if err := errors.Join(noIPv6(h), nsRunAll(h,
		[]string{"ip", "link", "add", "br0", "type", "bridge"},
		[]string{"ip", "link", "set", "br0", "up"})); err != nil {
		return nil, err
	}
	p := &dpPair{key: "bridge_veth", serverIP: netip.MustParseAddr("10.98.3.12")}
	for i, suffix := range []string{"b1", "b2"} {
		ns, err := e.netns(suffix)
		if err != nil {
			return nil, err
		}
		port := "v" + suffix
		if err := errors.Join(noIPv6(ns), nsRunAll(h,
			[]string{"ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(ns)},
			[]string{"ip", "link", "set", port, "master", "br0"},
			[]string{"ip", "link", "set", port, "up"})); err != nil {
			return nil, err
		}
		if err := nsRunAll(ns,
			[]string{"ip", "addr", "add", fmt.Sprintf("10.98.3.%d/24", 11+i), "dev", "eth0"},
			[]string{"ip", "link", "set", "eth0", "up"}); err != nil {
			return nil, err
		}
		if i == 0 {
			p.client = ns
		} else {
			p.server = ns
		}
	}
	nf, _ := nsRun(h, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables")
	p.note = "bridge-nf-call-iptables=" + strings.TrimSpace(nf)
	if strings.TrimSpace(nf) == "" {
		p.note = "no br_netfilter"
	}
	return p, nil
}

// iperfServer starts `iperf3 -s` in the server namespace (stopped at
// clean-up) and waits until the client reaches it.
func (e *env) iperfServer(p *dpPair) error {
	logPath := filepath.Join(e.tmp, "iperf3-"+p.key+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net="+p.server, "--", "iperf3", "-s", "-p", iperfPort)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	e.onCleanup("stop iperf3 server "+p.key, func() error {
		_ = cmd.Process.Kill()
		select {
		case <-done:
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("iperf3 pid %d did not exit", cmd.Process.Pid)
		}
	})
	if _, err := nsRun(p.client, "ping", "-c", "2", "-i", "0.2", "-W", "2", p.serverIP.String()); err != nil {
		return err
	}
	for range 100 {
		out, _ := nsRun(p.server, "ss", "-Hltn", "sport", "=", ":"+iperfPort)
		if strings.TrimSpace(out) != "" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("iperf3 server not listening; log %s", logPath)
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Packets       float64 `json:"packets"`
	LostPackets   float64 `json:"lost_packets"`
}

type iperfResult struct {
	End struct {
		SumSent     iperfSum `json:"sum_sent"`
		SumReceived iperfSum `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs an iperf3 client in the client namespace (one retry: the
// server may still be finishing the previous test).
func iperf(ctx context.Context, p *dpPair, secs int, args ...string) (iperfResult, error) {
	var res iperfResult
	var err error
	for attempt := range 2 {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
		argv := append([]string{"--net=" + p.client, "--", "iperf3", "-c", p.serverIP.String(), "-p", iperfPort,
			"-t", fmt.Sprint(secs), "-J"}, args...)
		var out []byte
		out, err = exec.CommandContext(cctx, "nsenter", argv...).Output()
		cancel()
		res = iperfResult{}
		if jerr := json.Unmarshal(out, &res); jerr != nil {
			err = errors.Join(err, fmt.Errorf("iperf3 output: %w", jerr))
			continue
		}
		if res.Error != "" {
			err = fmt.Errorf("iperf3: %s", res.Error)
			continue
		}
		if err == nil {
			return res, nil
		}
	}
	return res, err
}

// iperfTCP returns the receiver's TCP throughput in Gbit/s, with client
// and server on one CPU (cpu modulo the CPUs there are). Left to the
// scheduler, the two land on one CPU in some runs and on two in others,
// and a run's rate follows where they landed (on the 2-CPU VM this was
// chosen on, about 12 or 29 Gbit/s for the same datapath) more than the
// datapath; on one CPU the rate is what the sender, the datapath and the
// receiver cost together.
func iperfTCP(ctx context.Context, p *dpPair, secs, cpu int) (float64, error) {
	c := cpu % runtime.NumCPU()
	res, err := iperf(ctx, p, secs, "-A", fmt.Sprintf("%d,%d", c, c))
	if err != nil {
		return 0, err
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// iperfUDP64 returns iperf3's receiver rate of 64-byte UDP datagrams in
// kpps (packets the server got: sent minus lost).
func iperfUDP64(ctx context.Context, p *dpPair, secs int) (float64, error) {
	res, err := iperf(ctx, p, secs, "-u", "-l", "64", "-b", "0")
	if err != nil {
		return 0, err
	}
	s := res.End.SumReceived
	if s.Seconds <= 0 {
		return 0, errors.New("iperf3: no receiver summary")
	}
	return (s.Packets - s.LostPackets) / s.Seconds / 1e3, nil
}
