package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/mvlan/mvlan/api"
)

// control holds the samples of the control-plane section (ms unless said).
type control struct {
	netCreate, netRm samples

	// The anchor: mvlan through its CLI (`run -d` / `rm -f`) and the CNI
	// macvlan + host-local plugins through cnitool (ADD / DEL), interleaved.
	attach, detach       samples
	cniAttach, cniDetach samples
	// mvlan-cni through the same cnitool (ADD / DEL), the third of each round.
	mvcniAttach, mvcniDetach samples
	// A plugin that does nothing (a shell script printing an empty
	// result) through the same cnitool, the fourth: what cnitool and a
	// plugin process cost without any work, the floor under the others.
	nopAttach, nopDetach samples
	// cninop (bench/cmd/cninop), a Go plugin built with the CNI project's
	// skel as mvlan-cni is, doing nothing: the floor under mvlan-cni.
	goNopAttach, goNopDetach samples

	// Probes every 10th anchor round: the CLI process alone, the CLI with
	// one API round trip.
	execTrue, exec, cliLs samples

	// The CNI macvlan plugin's add on a parent holding the fill's
	// endpoints and on one holding none (kernelGrowth).
	cniFullParent, cniEmptyParent samples

	// Through the API from mvbench (no process), one after another:
	// apiAttach for endpoints 1..N in order, apiDetach for N..1.
	apiAttach, apiDetach samples
	fillWall             time.Duration

	// The same attach (and a detach to keep the count) with and without a
	// 10 Hz scrape running, in alternating blocks.
	attachScraping, attachQuiet samples

	// parallel: N attaches from 8 clients at once; wall time (s).
	parallel, parallelDetach time.Duration
	parallelN                int

	startEmpty   time.Duration
	reconcile    samples // s: exec to API answering, N endpoints in state
	reconcileLog samples // s: the agent's own "reconciled ... took"
	scrape       samples
	scrapeSeries int // mvlan_vlan_rx_packets_total series
	scrapeBytes  int
	scrapeAttach int // mvlan_attach_info series
	scrapeShort  string
}

// anchorRounds is how many endpoints each of mvlan and CNI attaches and
// detaches in the interleaved comparison.
func anchorRounds(cfg config) int {
	if cfg.quick {
		return 20
	}
	return 100
}

// runControl: an agent (debug log: it times the phases of each attach) in
// a sandbox whose eth0 (and the CNI network's cni0) is a veth.
func runControl(ctx context.Context, e *env, r *report) error {
	var c control
	sb, err := e.sandbox("c")
	if err != nil {
		return err
	}
	// No IPv6 chatter on the parents: the per-VLAN map (4096 entries) is
	// to hold eth0's 4094 VLANs, not entries of other parents.
	if err := errors.Join(noIPv6(sb.host), noIPv6(sb.wire)); err != nil {
		return err
	}
	nNets := max(e.cfg.reps, 10)
	for i := range nNets {
		if err := sb.veth(fmt.Sprintf("p%d", i), fmt.Sprintf("wp%d", i)); err != nil {
			return err
		}
	}
	if err := sb.veth("cni0", "wcni0"); err != nil {
		return err
	}
	a := e.newAgent("control", sb.host, "127.0.0.1:9469", "--log-level", "debug")
	if c.startEmpty, err = a.start(ctx); err != nil {
		return err
	}
	if err := c.networks(ctx, a, nNets); err != nil {
		return err
	}
	if _, _, err := a.mv(ctx, "network", "create", "--subnet=10.20.0.0/16", "-o", "parent=eth0", "bench"); err != nil {
		return err
	}
	if err := c.anchor(ctx, e, a, sb); err != nil {
		return err
	}
	if err := c.fill(ctx, e, a); err != nil {
		return err
	}
	if err := c.kernelGrowth(ctx, e, sb); err != nil {
		return err
	}
	if err := c.measureScrape(ctx, e, sb); err != nil {
		return err
	}
	if err := c.whileScraping(ctx, e, a, sb); err != nil {
		return err
	}
	if err := c.restarts(ctx, e, a, sb); err != nil {
		return err
	}
	if err := c.drain(ctx, e, a); err != nil {
		return err
	}
	if err := c.parallelAttach(ctx, e, a); err != nil {
		return err
	}
	if _, _, err := a.mv(ctx, "network", "rm", "bench"); err != nil {
		return err
	}
	log := a.log()
	if err := a.stop(); err != nil {
		return err
	}
	c.write(e, r, attachPhases(log, e.base+"-am"), attachPhases(log, e.base+"-a"))
	return nil
}

func (c *control) networks(ctx context.Context, a *agentProc, n int) error {
	progress("control: network create / rm x%d", n)
	for i := range n {
		d, _, err := a.mv(ctx, "network", "create", fmt.Sprintf("--subnet=10.%d.0.0/24", 100+i), "-o", fmt.Sprintf("parent=p%d", i), fmt.Sprintf("n%d", i))
		if err != nil {
			return err
		}
		c.netCreate = append(c.netCreate, ms(d))
		if d, _, err = a.mv(ctx, "network", "rm", fmt.Sprintf("n%d", i)); err != nil {
			return err
		}
		c.netRm = append(c.netRm, ms(d))
	}
	progress("control: network create p50 %.1f ms, rm p50 %.1f ms", c.netCreate.median(), c.netRm.median())
	return nil
}

// anchor attaches K endpoints with `mvlan run -d` and K with cnitool ADD,
// alternating (which of the two goes first alternates too), then detaches
// them the same way. cnitool needs its namespace made beforehand and
// deleted afterwards (not timed: `run -d` makes its own and `rm -f`
// deletes it, so the comparison favours CNI).
func (c *control) anchor(ctx context.Context, e *env, a *agentProc, sb *sandbox) error {
	k := anchorRounds(e.cfg)
	cn, err := e.newCNI(ctx, sb.host, "cni0", "10.30.0.0/16")
	if err != nil {
		return err
	}
	mname := func(i int) string { return fmt.Sprintf("%s-am%d", e.base, i) }
	knetns := make([]string, k)
	for i := range k {
		if knetns[i], err = e.netns(fmt.Sprintf("ak%d", i)); err != nil {
			return err
		}
	}
	mc, err := e.newMvlanCNI(cn, a.socket, "bench")
	if err != nil {
		return err
	}
	nop, err := e.newNopCNI(cn)
	if err != nil {
		return err
	}
	goNop, err := e.newGoNopCNI(ctx, cn)
	if err != nil {
		return err
	}
	jnetns, nnetns, gnetns := make([]string, k), make([]string, k), make([]string, k)
	for i := range k {
		if jnetns[i], err = e.netns(fmt.Sprintf("aj%d", i)); err != nil {
			return err
		}
		if nnetns[i], err = e.netns(fmt.Sprintf("an%d", i)); err != nil {
			return err
		}
		if gnetns[i], err = e.netns(fmt.Sprintf("ag%d", i)); err != nil {
			return err
		}
	}
	// The host settles first, as before the API phases: what the sections
	// before left the kernel to do (namespaces to destroy) and the
	// namespaces and builds made above would be measured as the first
	// rounds' own.
	progress("control: anchor, %d endpoints each: mvlan run -d / rm -f, cnitool add / del of the CNI plugins %s (cnitool %s), of mvlan-cni and of two no-op plugins, interleaved (after %.1f s for the host to settle)",
		k, cniPluginsVersion, cniToolVersion, settle(ctx).Seconds())
	steps := func(verb string, mv func(i int) (time.Duration, error), outs ...*samples) error {
		for i := range k {
			legs := []func() (time.Duration, error){
				func() (time.Duration, error) { return mv(i) },
				func() (time.Duration, error) { return cn.run(ctx, verb, knetns[i]) },
				func() (time.Duration, error) { return mc.run(ctx, verb, jnetns[i]) },
				func() (time.Duration, error) { return nop.run(ctx, verb, nnetns[i]) },
				func() (time.Duration, error) { return goNop.run(ctx, verb, gnetns[i]) },
			}
			for j := range legs { // who goes first rotates
				l := (i + j) % len(legs)
				d, err := legs[l]()
				if err != nil {
					return err
				}
				*outs[l] = append(*outs[l], ms(d))
			}
			if i%10 == 5 {
				if err := c.probe(ctx, e, a); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err = steps("add", func(i int) (time.Duration, error) {
		d, _, err := a.mv(ctx, "run", "-d", "--name", mname(i), "--net", "bench")
		return d, err
	}, &c.attach, &c.cniAttach, &c.mvcniAttach, &c.nopAttach, &c.goNopAttach)
	if err != nil {
		return err
	}
	err = steps("del", func(i int) (time.Duration, error) {
		d, _, err := a.mv(ctx, "rm", "-f", mname(i))
		return d, err
	}, &c.detach, &c.cniDetach, &c.mvcniDetach, &c.nopDetach, &c.goNopDetach)
	if err != nil {
		return err
	}
	for i := range k {
		if err := errors.Join(delNetns(e.base+fmt.Sprintf("-ak%d", i)), delNetns(e.base+fmt.Sprintf("-aj%d", i)), delNetns(e.base+fmt.Sprintf("-an%d", i)),
			delNetns(e.base+fmt.Sprintf("-ag%d", i))); err != nil {
			return err
		}
	}
	progress("control: anchor p50 attach mvlan %.1f ms / CNI %.1f ms / mvlan-cni %.1f ms / no-op %.1f ms, detach mvlan %.1f ms / CNI %.1f ms / mvlan-cni %.1f ms / no-op %.1f ms",
		c.attach.median(), c.cniAttach.median(), c.mvcniAttach.median(), c.nopAttach.median(), c.detach.median(), c.cniDetach.median(), c.mvcniDetach.median(), c.nopDetach.median())
	return nil
}

// probe times the floor under a CLI command: any process, the CLI
// process alone, the CLI with one API round trip.
func (c *control) probe(ctx context.Context, e *env, a *agentProc) error {
	d, _, err := timed(ctx, "/bin/true")
	if err != nil {
		return err
	}
	c.execTrue = append(c.execTrue, ms(d))
	if d, _, err = timed(ctx, e.cfg.mvlan, "--version"); err != nil {
		return err
	}
	c.exec = append(c.exec, ms(d))
	if d, _, err = a.mv(ctx, "network", "ls", "-q"); err != nil {
		return err
	}
	c.cliLs = append(c.cliLs, ms(d))
	return nil
}

func (e *env) endpointName(tag string, i int) string { return fmt.Sprintf("%s-%s%d", e.base, tag, i) }

// fill attaches N endpoints through the API, one after another.
func (c *control) fill(ctx context.Context, e *env, a *agentProc) error {
	n := e.cfg.endpoints
	progress("control: attach %d endpoints through the API, one after another (after %.1f s for the host to settle)", n, settle(ctx).Seconds())
	t0 := time.Now()
	for i := range n {
		t := time.Now()
		if _, err := a.api.CreateEndpoint(ctx, api.EndpointCreate{Network: "bench", Name: e.endpointName("a", i)}); err != nil {
			return fmt.Errorf("API attach %d: %w", i, err)
		}
		c.apiAttach = append(c.apiAttach, ms(time.Since(t)))
		if (i+1)%max(n/10, 1) == 0 {
			progress("control: attached %d/%d, last p50 %.1f ms", i+1, n, c.apiAttach[max(0, i+1-n/10):].median())
		}
	}
	c.fillWall = time.Since(t0)
	return nil
}

// drain detaches the N endpoints of fill through the API, newest first.
func (c *control) drain(ctx context.Context, e *env, a *agentProc) error {
	n := e.cfg.endpoints
	progress("control: detach %d endpoints through the API, one after another", n)
	for i := n - 1; i >= 0; i-- {
		t := time.Now()
		if err := a.api.RemoveEndpoint(ctx, e.endpointName("a", i), true); err != nil {
			return fmt.Errorf("API detach %d: %w", i, err)
		}
		c.apiDetach = append(c.apiDetach, ms(time.Since(t)))
	}
	progress("control: API detach p50 %.1f ms", c.apiDetach.median())
	return nil
}

// restarts stops and starts the agent with N endpoints in its state.
func (c *control) restarts(ctx context.Context, e *env, a *agentProc, sb *sandbox) error {
	n := e.cfg.endpoints
	for rep := range e.cfg.reps {
		if err := a.stop(); err != nil {
			return err
		}
		d, err := a.start(ctx)
		if err != nil {
			return err
		}
		c.reconcile = append(c.reconcile, d.Seconds())
		if took, ok := lastReconciled(a.log()); ok {
			c.reconcileLog = append(c.reconcileLog, took.Seconds())
		}
		eps, err := a.api.Endpoints(ctx)
		if err != nil {
			return err
		}
		if len(eps) != n {
			return fmt.Errorf("after restart the agent has %d endpoints, want %d", len(eps), n)
		}
		progress("control: restart %d/%d with %d endpoints: API answered after %.2f s", rep+1, e.cfg.reps, n, d.Seconds())
	}
	prof := e.profiler()
	if prof == nil {
		return nil
	}
	sc := newScraper(sb.host, "127.0.0.1:9469")
	stop := prof.start("scrape", a.cmd.Process.Pid, "")
	for range 10 {
		if _, _, err := sc.get(ctx); err != nil {
			return err
		}
	}
	stop()
	sc.close()
	if err := a.stop(); err != nil {
		return err
	}
	stop = prof.start("restart", 0, "mvlan")
	_, err := a.start(ctx)
	stop()
	return err
}

var reconciledRe = regexp.MustCompile(`msg=reconciled .*took=(\S+)`)

// lastReconciled is the duration of the agent's last reconcile, from its log.
func lastReconciled(log string) (time.Duration, bool) {
	m := reconciledRe.FindAllStringSubmatch(log, -1)
	if len(m) == 0 {
		return 0, false
	}
	d, err := time.ParseDuration(m[len(m)-1][1])
	return d, err == nil
}
