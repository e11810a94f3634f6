package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// control holds the samples of the control-plane section (ms unless said).
type control struct {
	netCreate, netRm samples
	attach, detach   samples // CLI, in endpoint order
	attachWall       time.Duration

	// Probes, every 10th endpoint, interleaved with the CLI calls: the CLI
	// process alone, the CLI with one API round trip, and attach/detach
	// through the API without a process.
	execTrue, exec, cliLs, apiAttach, apiDetach samples

	startEmpty   time.Duration
	reconcile    samples // s: exec to API answering, N endpoints in state
	reconcileLog samples // s: the agent's own "reconciled ... took"
	scrape       samples
	scrapeSeries int // mvlan_vlan_rx_packets_total series
	scrapeBytes  int
	scrapeAttach int // mvlan_attach_info series
	scrapeShort  string
}

// runControl: an agent (debug log: it times the phases of each attach) in
// a sandbox; everything through the CLI as an operator runs it, one
// process per command.
func runControl(ctx context.Context, e *env, r *report) error {
	n := e.cfg.endpoints
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
	a := e.newAgent("control", sb.host, "127.0.0.1:9469", "--log-level", "debug")
	if c.startEmpty, err = a.start(ctx); err != nil {
		return err
	}

	progress("control: network create / rm x%d", nNets)
	for i := range nNets {
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

	if _, _, err := a.mv(ctx, "network", "create", "--subnet=10.20.0.0/16", "-o", "parent=eth0", "bench"); err != nil {
		return err
	}
	name := func(i int) string { return fmt.Sprintf("%s-c%d", e.base, i) }
	probe := func() error {
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
		pname := e.base + "-p"
		t0 := time.Now()
		if _, err := a.api.CreateEndpoint(ctx, api.EndpointCreate{Network: "bench", Name: pname}); err != nil {
			return fmt.Errorf("API attach: %w", err)
		}
		c.apiAttach = append(c.apiAttach, ms(time.Since(t0)))
		t0 = time.Now()
		if err := a.api.RemoveEndpoint(ctx, pname, true); err != nil {
			return fmt.Errorf("API detach: %w", err)
		}
		c.apiDetach = append(c.apiDetach, ms(time.Since(t0)))
		return nil
	}

	progress("control: attach %d endpoints (mvlan run -d)", n)
	t0 := time.Now()
	for i := range n {
		d, _, err := a.mv(ctx, "run", "-d", "--name", name(i), "--net", "bench")
		if err != nil {
			return err
		}
		c.attach = append(c.attach, ms(d))
		if i%10 == 5 {
			if err := probe(); err != nil {
				return err
			}
		}
		if (i+1)%max(n/10, 1) == 0 {
			progress("control: attached %d/%d, last p50 %.1f ms", i+1, n, c.attach[max(0, i+1-n/10):].median())
		}
	}
	c.attachWall = time.Since(t0)

	if err := c.measureScrape(ctx, e, sb); err != nil {
		return err
	}

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

	if prof := e.profiler(); prof != nil {
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
		if err != nil {
			return err
		}
	}

	progress("control: detach %d endpoints (mvlan rm -f)", n)
	for i := range n {
		d, _, err := a.mv(ctx, "rm", "-f", name(i))
		if err != nil {
			return err
		}
		c.detach = append(c.detach, ms(d))
		if i%10 == 5 {
			if err := probe(); err != nil {
				return err
			}
		}
		if (i+1)%max(n/10, 1) == 0 {
			progress("control: detached %d/%d, last p50 %.1f ms", i+1, n, c.detach[max(0, i+1-n/10):].median())
		}
	}
	if _, _, err := a.mv(ctx, "network", "rm", "bench"); err != nil {
		return err
	}
	log := a.log()
	if err := a.stop(); err != nil {
		return err
	}
	c.write(e, r, attachPhases(log, e.base+"-c"), attachPhases(log, e.base+"-p"))
	return nil
}

// measureScrape fills the parent's per-VLAN counters for VIDs 1..4094 with
// tagged frames sent into the wire end of eth0, then times /metrics,
// fetched from inside the sandbox.
func (c *control) measureScrape(ctx context.Context, e *env, sb *sandbox) error {
	sc := newScraper(sb.host, "127.0.0.1:9469")
	defer sc.close()
	var others map[string]int // VLAN series of other parents, by parent
	count := func() (int, error) {
		body, _, err := sc.get(ctx)
		if err != nil {
			return 0, err
		}
		c.scrapeBytes = len(body)
		c.scrapeSeries, c.scrapeAttach, others = 0, 0, map[string]int{}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "mvlan_vlan_rx_packets_total{") {
				_, parent, _ := strings.Cut(line, `parent="`)
				parent, _, _ = strings.Cut(parent, `"`)
				if parent == "eth0" && !strings.Contains(line, `vlan="0"`) {
					c.scrapeSeries++
				} else {
					others[parent]++
				}
			}
			if strings.HasPrefix(line, "mvlan_attach_info{") {
				c.scrapeAttach++
			}
		}
		return c.scrapeSeries, nil
	}
	progress("control: tagged frames for VLANs 1-4094 into eth0")
	for try := 0; ; try++ {
		if err := sendVLANFrames(sb.wire, "wire0", 4094); err != nil {
			return err
		}
		got, err := count()
		if err != nil {
			return err
		}
		if got >= 4094 {
			break
		}
		if try == 3 {
			c.scrapeShort = fmt.Sprintf("only %d of VLANs 1-4094 on eth0 were counted after 4 rounds of frames; other VLAN series by parent: %v", got, others)
			progress("control: %s", c.scrapeShort)
			break
		}
	}
	for range max(e.cfg.reps, 10) {
		_, d, err := sc.get(ctx)
		if err != nil {
			return err
		}
		c.scrape = append(c.scrape, ms(d))
	}
	progress("control: scrape (%d VLAN series, %d attachments, %d KiB) p50 %.1f ms", c.scrapeSeries, c.scrapeAttach, c.scrapeBytes>>10, c.scrape.median())
	return nil
}

// sendVLANFrames sends one 802.1Q-tagged IPv4/UDP frame for each VID
// 1..vids out of link ifName in namespace ns (AF_PACKET), to a unicast MAC
// nobody has.
func sendVLANFrames(ns, ifName string, vids int) error {
	var fd, idx int
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		idx = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("packet socket in %s: %w", ns, err)
	}
	defer unix.Close(fd)
	frame := make([]byte, 0, 64)
	frame = append(frame, 0x02, 0, 0x5e, 0, 0, 0x99) // dst
	frame = append(frame, 0x02, 0, 0, 0, 0, 0x01)    // src
	frame = append(frame, 0x81, 0x00, 0, 0)          // 802.1Q, VID set below
	frame = append(frame, 0x08, 0x00)                // IPv4
	ip := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 51, 100, 7, 198, 51, 100, 8}
	udp := []byte{0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0}
	frame = append(append(frame, ip...), udp...)
	for len(frame) < 64 {
		frame = append(frame, 0)
	}
	for vid := 1; vid <= vids; vid++ {
		binary.BigEndian.PutUint16(frame[14:], uint16(vid))
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: idx}); err != nil && !errors.Is(err, unix.ENOBUFS) {
			return fmt.Errorf("send VLAN %d frame: %w", vid, err)
		}
		if vid%256 == 0 {
			time.Sleep(time.Millisecond) // let the backlog drain
		}
	}
	return nil
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

// phases are the agent's own timings of each attach (debug log of
// Agent.realize), in ms.
type phases struct {
	netns, link, datapath, realize samples
}

var phaseRe = regexp.MustCompile(`msg="?(netns created|link attached|realize)"? name=(\S+) (?:at|took)=(\S+)`)

// attachPhases reads the phases of the attaches of endpoints whose name
// starts with prefix, in log order (a name may come back: the probes reuse
// theirs).
func attachPhases(log, prefix string) phases {
	type at struct{ netns, link time.Duration }
	open := map[string]*at{}
	var p phases
	for _, m := range phaseRe.FindAllStringSubmatch(log, -1) {
		if !strings.HasPrefix(m[2], prefix) {
			continue
		}
		d, err := time.ParseDuration(m[3])
		if err != nil {
			continue
		}
		x := open[m[2]]
		if x == nil {
			x = &at{}
			open[m[2]] = x
		}
		switch m[1] {
		case "netns created":
			x.netns = d
		case "link attached":
			x.link = d
		case "realize":
			delete(open, m[2])
			if x.link == 0 {
				continue // failed half-way
			}
			p.netns = append(p.netns, ms(x.netns))
			p.link = append(p.link, ms(x.link-x.netns))
			p.datapath = append(p.datapath, ms(d-x.link))
			p.realize = append(p.realize, ms(d))
		}
	}
	return p
}

// write reports the section; cli and api are the agent's phases of the
// CLI attaches and of the API probes.
func (c *control) write(e *env, r *report, cli, api phases) {
	n := e.cfg.endpoints
	k := min(n, 1000)
	attach1000 := samples(c.attach[:k]).sum() / 1000 * 1000 / float64(k) // s
	r.set("control.network_create_ms_p50", c.netCreate.median())
	r.set("control.attach_ms_p50", c.attach.pct(50))
	r.set("control.attach_ms_p99", c.attach.pct(99))
	r.set("control.detach_ms_p50", c.detach.pct(50))
	r.set("control.detach_ms_p99", c.detach.pct(99))
	r.set("control.attach_1000_s", attach1000)
	r.set("control.reconcile_1000_s", c.reconcile.median())
	r.set("control.scrape_ms", c.scrape.median())

	s := r.section("control: the CLI against an agent")
	s.para("An agent (`--log-level debug`) in a sandbox namespace whose eth0 is a veth; every command is one `mvlan` process, "+
		"timed from exec to exit, as an operator runs it. %d endpoints (`MVLAN_BENCH_ENDPOINTS`) on one network (a /16 on eth0), "+
		"attached one after another with `mvlan run -d --name NAME --net bench`, detached with `mvlan rm -f NAME`.", n)
	t := s.table("command", "p50 ms", "p99 ms", "min", "max", "n", "target")
	t.row("`network create` (a veth parent, a /24)", num(c.netCreate.median()), num(c.netCreate.pct(99)), num(c.netCreate.min()), num(c.netCreate.max()), fmt.Sprint(len(c.netCreate)), "")
	t.row("`network rm`", num(c.netRm.median()), num(c.netRm.pct(99)), num(c.netRm.min()), num(c.netRm.max()), fmt.Sprint(len(c.netRm)), "")
	t.row("attach: `run -d`", num(c.attach.pct(50)), num(c.attach.pct(99)), num(c.attach.min()), num(c.attach.max()), fmt.Sprint(len(c.attach)), "p50 < 5, p99 < 20")
	t.row("detach: `rm -f`", num(c.detach.pct(50)), num(c.detach.pct(99)), num(c.detach.min()), num(c.detach.max()), fmt.Sprint(len(c.detach)), "p50 < 5, p99 < 20")

	t = s.table("measurement", "median", "min", "max", "n", "unit", "target")
	extr := ""
	if k != 1000 {
		extr = fmt.Sprintf(" (from %d, scaled)", k)
	}
	t.row("attach 1000 endpoints: sum of the `run -d` times"+extr, num(attach1000), "", "", "1", "s", "< 10 s")
	t.row(fmt.Sprintf("  wall time of the %d attaches, probes included", n), num(c.attachWall.Seconds()), "", "", "1", "s", "")
	t.row(fmt.Sprintf("agent start with %d endpoints in state: exec to API answering", n), num(c.reconcile.median()), num(c.reconcile.min()), num(c.reconcile.max()), fmt.Sprint(len(c.reconcile)), "s", "< 2 s")
	t.row("  of which reconcile, as the agent logs it", num(c.reconcileLog.median()), num(c.reconcileLog.min()), num(c.reconcileLog.max()), fmt.Sprint(len(c.reconcileLog)), "s", "")
	t.row("agent start with empty state", num(c.startEmpty.Seconds()), "", "", "1", "s", "")
	t.row(fmt.Sprintf("one /metrics scrape: %d VLAN series on eth0, %d attachments, %d KiB", c.scrapeSeries, c.scrapeAttach, c.scrapeBytes>>10),
		num(c.scrape.median()), num(c.scrape.min()), num(c.scrape.max()), fmt.Sprint(len(c.scrape)), "ms", "< 50 ms")

	if c.scrapeShort != "" {
		s.para("**Scrape: %s.**", c.scrapeShort)
	}
	s.para("Where attach and detach time goes (p50, ms). Probes every 10th endpoint, interleaved with the CLI calls above: " +
		"`/bin/true`, `mvlan --version` (the CLI process alone), `mvlan network ls -q` (process + one API round trip), and the same attach/detach " +
		"through the API from mvbench (no process). The agent's phases come from its debug log (`Agent.realize`): namespace creation, " +
		"the macvlan (create, move, name, MAC, addresses, routes, up, announce), the datapath (endpoint table, per-namespace program load, attach).")
	t = s.table("part", "attach", "detach")
	t.row("any process: `/bin/true` (fork + exec floor of this machine)", num(c.execTrue.median()), num(c.execTrue.median()))
	t.row("CLI process alone: `mvlan --version`", num(c.exec.median()), num(c.exec.median()))
	t.row("CLI process + one API round trip: `mvlan network ls -q`", num(c.cliLs.median()), num(c.cliLs.median()))
	t.row("through the API, no process", num(c.apiAttach.median()), num(c.apiDetach.median()))
	t.row("  agent: create the namespace", num(api.netns.median()), "")
	t.row("  agent: macvlan create + move + configure", num(api.link.median()), "")
	t.row("  agent: datapath (table + program load + attach)", num(api.datapath.median()), "")
	t.row("  agent: rest (IPAM, MAC pick, two state writes, HTTP) = API − the three above", num(c.apiAttach.median()-api.realize.median()), "")
	t.row("through the CLI (`run -d` / `rm -f`)", num(c.attach.pct(50)), num(c.detach.pct(50)))
	t.row("  agent phases of these: namespace / macvlan / datapath", fmt.Sprintf("%s / %s / %s", num(cli.netns.median()), num(cli.link.median()), num(cli.datapath.median())), "")
	t.row("  CLI share = CLI − API", num(c.attach.pct(50)-c.apiAttach.median()), num(c.detach.pct(50)-c.apiDetach.median()))
	tenth := max(n/10, 1)
	s.para("Growth with the endpoint count: attach p50 %s ms over the first %d endpoints, %s ms over the last %d; detach p50 %s ms over the first %d, %s ms over the last %d.",
		num(samples(c.attach[:tenth]).median()), tenth, num(samples(c.attach[n-tenth:]).median()), tenth,
		num(samples(c.detach[:tenth]).median()), tenth, num(samples(c.detach[n-tenth:]).median()), tenth)

	r.target("attach p50 (CLI `run -d`)", num(c.attach.pct(50))+" ms", "< 5 ms", c.attach.pct(50) < 5)
	r.target("attach p99", num(c.attach.pct(99))+" ms", "< 20 ms", c.attach.pct(99) < 20)
	r.target("detach p50 (CLI `rm -f`)", num(c.detach.pct(50))+" ms", "< 5 ms", c.detach.pct(50) < 5)
	r.target("detach p99", num(c.detach.pct(99))+" ms", "< 20 ms", c.detach.pct(99) < 20)
	r.target("attach 1000 endpoints"+extr, num(attach1000)+" s", "< 10 s", attach1000 < 10)
	r.target(fmt.Sprintf("agent start + reconcile with %d endpoints", n), num(c.reconcile.median())+" s", "< 2 s", c.reconcile.median() < 2)
	r.target("one /metrics scrape (4094 VLANs, "+fmt.Sprint(n)+" endpoints)", num(c.scrape.median())+" ms", "< 50 ms", c.scrape.median() < 50)
}
