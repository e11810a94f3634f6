package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// phases are the agent's own timings of each attach (debug log of
// Engine.realize), in ms: taking a namespace from the pool, the macvlan
// with its datapath, and what is left after them (the wait for the
// record and the namespace's name, which are made meanwhile).
type phases struct {
	spare, link, named, realize samples
}

var phaseRe = regexp.MustCompile(`msg="?realize"? name=(\S+) took=(\S+) spare=(\S+) link=(\S+)`)

// attachPhases reads the phases of the attaches of endpoints named
// prefix followed by a number, in log order.
func attachPhases(log, prefix string) phases {
	var p phases
	for _, m := range phaseRe.FindAllStringSubmatch(log, -1) {
		if n, ok := strings.CutPrefix(m[1], prefix); !ok || strings.Trim(n, "0123456789") != "" || n == "" {
			continue
		}
		var d [3]time.Duration
		var err error
		for i := range d {
			if d[i], err = time.ParseDuration(m[i+2]); err != nil {
				break
			}
		}
		if err != nil {
			continue
		}
		took, spare, link := d[0], d[1], d[2]
		p.spare = append(p.spare, ms(spare))
		p.link = append(p.link, ms(link-spare))
		p.named = append(p.named, ms(took-link))
		p.realize = append(p.realize, ms(took))
	}
	return p
}

// ratio is a/b, 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// derived are the section's figures that targets are set on.
type derived struct {
	attachVsCNI, detachVsCNI, growth, detachGrowth float64
	growthMs, cniGrowthMs                          float64 // the same growths in ms
	parallel1000, fill1000, scrapeRatio            float64
	tenth                                          int
	scaled                                         string // how a per-1000 figure was obtained
}

func (c *control) derive(n int) derived {
	tenth := max(n/10, 1)
	d := derived{tenth: tenth}
	d.attachVsCNI = ratio(c.attach.median(), c.cniAttach.median())
	d.detachVsCNI = ratio(c.detach.median(), c.cniDetach.median())
	d.growth = ratio(samples(c.apiAttach[n-tenth:]).median(), samples(c.apiAttach[:tenth]).median())
	d.growthMs = samples(c.apiAttach[n-tenth:]).median() - samples(c.apiAttach[:tenth]).median()
	d.cniGrowthMs = c.cniFullParent.median() - c.cniEmptyParent.median()
	// apiDetach runs from the N-th endpoint down to the first.
	d.detachGrowth = ratio(samples(c.apiDetach[:tenth]).median(), samples(c.apiDetach[n-tenth:]).median())
	d.parallel1000 = c.parallel.Seconds() * 1000 / float64(n)
	d.fill1000 = c.fillWall.Seconds() * 1000 / float64(n)
	d.scrapeRatio = ratio(c.attachScraping.pct(99), c.attachQuiet.pct(99))
	if n != 1000 {
		d.scaled = fmt.Sprintf(" (%d endpoints, scaled to 1000)", n)
	}
	return d
}

// write reports the section; cli and api are the agent's phases of the
// CLI attaches of the anchor and of the API attaches of the fill.
func (c *control) write(e *env, r *report, cli, api phases) {
	n := e.cfg.endpoints
	d := c.derive(n)
	for k, v := range map[string]float64{
		"network_create_ms_p50":           c.netCreate.median(),
		"attach_ms_p50":                   c.attach.median(),
		"attach_ms_p99":                   c.attach.pct(99),
		"detach_ms_p50":                   c.detach.median(),
		"detach_ms_p99":                   c.detach.pct(99),
		"cni_attach_ms_p50":               c.cniAttach.median(),
		"cni_detach_ms_p50":               c.cniDetach.median(),
		"attach_vs_cni":                   d.attachVsCNI,
		"detach_vs_cni":                   d.detachVsCNI,
		"api_attach_ms_p50":               c.apiAttach.median(),
		"api_attach_ms_p99":               c.apiAttach.pct(99),
		"api_detach_ms_p50":               c.apiDetach.median(),
		"attach_growth":                   d.growth,
		"cni_attach_growth":               ratio(c.cniFullParent.median(), c.cniEmptyParent.median()),
		"attach_growth_ms":                d.growthMs,
		"cni_attach_growth_ms":            d.cniGrowthMs,
		"attach_1000_s":                   d.fill1000,
		"parallel_attach_1000_s":          d.parallel1000,
		"reconcile_1000_s":                c.reconcile.median(),
		"scrape_ms":                       c.scrape.median(),
		"attach_p99_while_scraping_ratio": d.scrapeRatio,
		"churn_attach_ms_p50":             c.attachQuiet.median(),
	} {
		r.set("control."+k, v)
	}
	c.writeCNI(r)
	c.writeTables(e, r, d, cli, api)
	c.writeTargets(r, d, n)
}

// writeCNI records the figures and the target of issue 16: mvlan-cni next
// to macvlan + host-local (the anchor's third leg against its second).
func (c *control) writeCNI(r *report) {
	addVs := ratio(c.mvcniAttach.median(), c.cniAttach.median())
	floor := ratio(c.nopAttach.median(), c.cniAttach.median())
	goFloor := ratio(c.goNopAttach.median(), c.cniAttach.median())
	// What each plugin adds to a Go plugin process that does nothing.
	work := ratio(c.mvcniAttach.median()-c.goNopAttach.median(), c.cniAttach.median()-c.goNopAttach.median())
	for k, v := range map[string]float64{
		"add_ms_p50":                c.mvcniAttach.median(),
		"del_ms_p50":                c.mvcniDetach.median(),
		"add_vs_macvlan":            addVs,
		"del_vs_macvlan":            ratio(c.mvcniDetach.median(), c.cniDetach.median()),
		"macvlan_add_ms_p50":        c.cniAttach.median(),
		"nop_add_ms_p50":            c.nopAttach.median(),
		"nop_del_ms_p50":            c.nopDetach.median(),
		"nop_vs_macvlan":            floor,
		"gonop_add_ms_p50":          c.goNopAttach.median(),
		"gonop_del_ms_p50":          c.goNopDetach.median(),
		"gonop_vs_macvlan":          goFloor,
		"add_over_gonop_vs_macvlan": work,
	} {
		r.set("cni."+k, v)
	}
	r.target("mvlan-cni add vs macvlan + host-local: `cnitool add` p50s", fmt.Sprintf("%.3f (%s / %s ms; no-op plugins: shell %.3f, Go %.3f; over the Go no-op: %.3f)", addVs, num(c.mvcniAttach.median()), num(c.cniAttach.median()), floor, goFloor, work), "<= 0.5", addVs <= 0.5)
}

func (c *control) writeTables(e *env, r *report, d derived, cli, api phases) {
	n, k := e.cfg.endpoints, anchorRounds(e.cfg)
	s := r.section("control: attach, detach, restart and scrape")
	s.para("An agent (`--log-level debug`) in a sandbox namespace whose eth0 is a veth; its wire end is in a second namespace. "+
		"**The anchor**: %d endpoints attached with `mvlan run -d --name NAME --net bench` (a /16 on eth0) and %d with "+
		"`cnitool add` of the reference CNI plugins (macvlan in bridge mode + host-local, %s, cnitool %s, built from the Go module proxy "+
		"into bench/cache/) on cni0, another veth of the same sandbox, with the same default route; interleaved one by one, then detached "+
		"the same way (`mvlan rm -f` / `cnitool del`). Every command is one process, timed from exec to exit; cnitool is started from "+
		"a thread inside the sandbox (no nsenter in its time), and its namespace is made before ADD and deleted after DEL untimed, "+
		"while `run -d` and `rm -f` include theirs. A third leg of each round is `cnitool add`/`del` of mvlan-cni (bin/mvlan-cni, "+
		"CNI type mvlan, on the agent's network bench), its own namespace made and deleted untimed likewise; a fourth, of a no-op plugin "+
		"(a shell script that prints an empty result): what cnitool and a plugin process cost doing nothing, the floor under the other two; "+
		"a fifth, of cninop (bench/cmd/cninop: a Go plugin on the CNI project's skel, as mvlan-cni is, that does nothing), the floor under mvlan-cni. "+
		"The rounds start once the host is quiet (as the API phases below do).", k, k, cniPluginsVersion, cniToolVersion)
	t := s.table("command", "p50 ms", "p99 ms", "min", "max", "n")
	for _, row := range []struct {
		what string
		s    samples
	}{
		{"`network create` (a veth parent, a /24)", c.netCreate}, {"`network rm`", c.netRm},
		{"mvlan attach: `run -d`", c.attach}, {"CNI attach: `cnitool add`", c.cniAttach},
		{"mvlan detach: `rm -f`", c.detach}, {"CNI detach: `cnitool del`", c.cniDetach},
		{"mvlan-cni attach: `cnitool add`", c.mvcniAttach}, {"mvlan-cni detach: `cnitool del`", c.mvcniDetach},
		{"no-op plugin attach: `cnitool add`", c.nopAttach}, {"no-op plugin detach: `cnitool del`", c.nopDetach},
		{"Go no-op plugin attach: `cnitool add`", c.goNopAttach}, {"Go no-op plugin detach: `cnitool del`", c.goNopDetach},
	} {
		t.row(row.what, num(row.s.median()), num(row.s.pct(99)), num(row.s.min()), num(row.s.max()), fmt.Sprint(len(row.s)))
	}
	s.para("**Through the API** (mvbench's own HTTP client on the unix socket, no process): %d endpoints attached one after another, "+
		"then (after the scrape and restart measurements) detached newest first. Each of these phases starts once the host is quiet "+
		"(at most two runnable tasks for 0.5 s, at most 30 s): the kernel destroys deleted namespaces in its own workers for seconds after the "+
		"last `rm` answered. **Parallel**: %d attaches from %d clients at once "+
		"(each its own connection); afterwards eth0 in every namespace is read and no IPv4 address or MAC may appear twice.", n, c.parallelN, parallelClients)
	t = s.table("measurement", "value", "min", "max", "n", "unit")
	t.row("API attach p50 / p99", num(c.apiAttach.median())+" / "+num(c.apiAttach.pct(99)), num(c.apiAttach.min()), num(c.apiAttach.max()), fmt.Sprint(len(c.apiAttach)), "ms")
	t.row("API detach p50 / p99", num(c.apiDetach.median())+" / "+num(c.apiDetach.pct(99)), num(c.apiDetach.min()), num(c.apiDetach.max()), fmt.Sprint(len(c.apiDetach)), "ms")
	t.row(fmt.Sprintf("API attach p50, first %d / last %d endpoints", d.tenth, d.tenth), num(samples(c.apiAttach[:d.tenth]).median())+" / "+num(samples(c.apiAttach[n-d.tenth:]).median()), "", "", "", "ms")
	t.row(fmt.Sprintf("the alternative on the same parent: CNI macvlan `cnitool add` p50 on eth0 (%d endpoints) / on an empty parent", n),
		num(c.cniFullParent.median())+" / "+num(c.cniEmptyParent.median()), "", "", fmt.Sprint(len(c.cniFullParent)), "ms")
	t.row(fmt.Sprintf("API detach p50, first %d / last %d endpoints", d.tenth, d.tenth), num(samples(c.apiDetach[n-d.tenth:]).median())+" / "+num(samples(c.apiDetach[:d.tenth]).median()), "", "", "", "ms")
	t.row("wall time of the sequential API attaches"+d.scaled, num(d.fill1000), "", "", "1", "s")
	t.row(fmt.Sprintf("%d parallel attaches, %d clients, wall time", c.parallelN, parallelClients), num(c.parallel.Seconds()), "", "", "1", "s")
	t.row(fmt.Sprintf("%d parallel detaches, %d clients, wall time", c.parallelN, parallelClients), num(c.parallelDetach.Seconds()), "", "", "1", "s")
	t.row(fmt.Sprintf("agent start with %d endpoints in state: exec to API answering", n), num(c.reconcile.median()), num(c.reconcile.min()), num(c.reconcile.max()), fmt.Sprint(len(c.reconcile)), "s")
	t.row("  of which reconcile, as the agent logs it", num(c.reconcileLog.median()), num(c.reconcileLog.min()), num(c.reconcileLog.max()), fmt.Sprint(len(c.reconcileLog)), "s")
	t.row("agent start with empty state", num(c.startEmpty.Seconds()), "", "", "1", "s")
	t.row(fmt.Sprintf("one /metrics scrape: %d VLAN series on eth0, %d attachments, %d KiB", c.scrapeSeries, c.scrapeAttach, c.scrapeBytes>>10),
		num(c.scrape.median()), num(c.scrape.min()), num(c.scrape.max()), fmt.Sprint(len(c.scrape)), "ms")
	t.row("API attach p99 with a 10 Hz scrape running / without (alternating blocks, one detach after each)",
		num(c.attachScraping.pct(99))+" / "+num(c.attachQuiet.pct(99)), "", "", fmt.Sprintf("%d / %d", len(c.attachScraping), len(c.attachQuiet)), "ms")
	t.row("churn: API attach right after a detach on the same network, p50 / p99 (`control.churn_attach_ms_p50`; the blocks without scrape)",
		num(c.attachQuiet.median())+" / "+num(c.attachQuiet.pct(99)), num(c.attachQuiet.min()), num(c.attachQuiet.max()), fmt.Sprint(len(c.attachQuiet)), "ms")
	if c.scrapeShort != "" {
		s.para("**Scrape: %s.**", c.scrapeShort)
	}
	s.para("Attach growth has a floor in the kernel, in what grows with N in a perf profile of the fill: a new macvlan walks its parent's upper devices "+
		"and its port's list of macvlans, whoever makes the link; the CNI macvlan plugin's add on eth0 with the fill's "+
		"%d endpoints / on an empty parent (`control.cni_attach_growth`) = %s. And a clsact qdisc (an endpoint's two hooks) walks the host's list of every tc block "+
		"bound (`flow_indr_dev_setup_offload`, two per endpoint), the price of attaching without TCX's RCU grace period. "+
		"In milliseconds: mvlan's API attach grew by %s ms from the first %d to the last %d (`control.attach_growth_ms`), the CNI plugin's add by %s ms "+
		"from the empty parent to the full one (`control.cni_attach_growth_ms`): as a ratio, the same kernel walks weigh more on the shorter attach.",
		n, num(ratio(c.cniFullParent.median(), c.cniEmptyParent.median())), num(d.growthMs), d.tenth, d.tenth, num(d.cniGrowthMs))
	s.para("Where attach time goes (p50, ms). Probes every 10th anchor round: `/bin/true`, `mvlan --version` (the CLI process alone), " +
		"`mvlan network ls -q` (process + one API round trip). The agent's phases come from its debug log (`realize`): a namespace from " +
		"the pool, the macvlan with its datapath (create, configure, endpoint table, programs), then the wait for the endpoint's record " +
		"and the namespace's name, which are made meanwhile; the rest of the agent's part is admission and the HTTP exchange.")
	t = s.table("part", "CLI attach (anchor)", "API attach")
	t.row("any process: `/bin/true` (fork + exec floor of this machine)", num(c.execTrue.median()), "")
	t.row("CLI process alone: `mvlan --version`", num(c.exec.median()), "")
	t.row("CLI process + one API round trip: `mvlan network ls -q`", num(c.cliLs.median()), "")
	t.row("whole attach", num(c.attach.median()), num(c.apiAttach.median()))
	t.row("  agent: realize (the three below)", num(cli.realize.median()), num(api.realize.median()))
	t.row("    a namespace from the pool", num(cli.spare.median()), num(api.spare.median()))
	t.row("    macvlan and datapath", num(cli.link.median()), num(api.link.median()))
	t.row("    then the record and the name", num(cli.named.median()), num(api.named.median()))
}

func (c *control) writeTargets(r *report, d derived, n int) {
	r.target("attach vs CNI: `run -d` p50 / `cnitool add` p50", fmt.Sprintf("%.3f (%s / %s ms)", d.attachVsCNI, num(c.attach.median()), num(c.cniAttach.median())), "<= 0.4", d.attachVsCNI <= 0.4)
	r.target("detach vs CNI: `rm -f` p50 / `cnitool del` p50", fmt.Sprintf("%.3f (%s / %s ms)", d.detachVsCNI, num(c.detach.median()), num(c.cniDetach.median())), "<= 0.4", d.detachVsCNI <= 0.4)
	r.target("attach p99 (CLI `run -d`)", num(c.attach.pct(99))+" ms", "< 20 ms", c.attach.pct(99) < 20)
	r.target("detach p99 (CLI `rm -f`)", num(c.detach.pct(99))+" ms", "< 20 ms", c.detach.pct(99) < 20)
	r.target("API attach p50", num(c.apiAttach.median())+" ms", "< 3 ms", c.apiAttach.median() < 3)
	r.target("API attach p99", num(c.apiAttach.pct(99))+" ms", "< 10 ms", c.apiAttach.pct(99) < 10)
	r.target("API detach p50", num(c.apiDetach.median())+" ms", "< 3 ms", c.apiDetach.median() < 3)
	r.target(fmt.Sprintf("attach growth: API p50 of the last %d / first %d of %d", d.tenth, d.tenth, n), fmt.Sprintf("%.3f (+%s ms; CNI macvlan's add +%s ms on the full parent)", d.growth, num(d.growthMs), num(d.cniGrowthMs)), "<= 1.2", d.growth <= 1.2)
	r.target(fmt.Sprintf("1000 attaches from %d clients, no duplicate address%s", parallelClients, d.scaled), num(d.parallel1000)+" s", "< 5 s", d.parallel1000 < 5)
	r.target(fmt.Sprintf("agent start with %d endpoints to API answering", n), num(c.reconcile.median())+" s", "< 0.5 s", c.reconcile.median() < 0.5)
	r.target(fmt.Sprintf("one /metrics scrape (4094 VLANs, %d endpoints)", n), num(c.scrape.median())+" ms", "< 15 ms", c.scrape.median() < 15)
	r.target("API attach p99 with a 10 Hz scrape / without", fmt.Sprintf("%.3f", d.scrapeRatio), "<= 1.2", d.scrapeRatio <= 1.2)
}
