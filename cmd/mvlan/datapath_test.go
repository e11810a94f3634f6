package main

// Privileged end-to-end tests of the eBPF datapath (issue 5, "Tests")
// through the real agent, in every attach mode: the default (auto: TCX on
// the parents on this kernel, clsact + cls_bpf on the endpoints), and TCX
// and clsact + cls_bpf each forced everywhere (--attach-mode tcx|tc).
// Flood and hairpin counts, counters across an agent restart, nothing left
// attached after rm (asked of the kernel itself), and a real Prometheus
// scraping the agent. The per-network / per-VLAN ping counts and the spoof
// drops are in stats_test.go.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/loader"
)

// dpMode is an --attach-mode a datapath test runs in, with the modes the
// parents' and the endpoints' attachments must then report.
type dpMode struct {
	name             string
	parent, endpoint string
	flags            []string
}

// dpModes: the default (auto: TCX on the parents on this kernel, clsact on
// the endpoints), and each mode forced everywhere.
var dpModes = []dpMode{
	{"auto", "tcx", "tc", nil},
	{"tcx", "tcx", "tcx", []string{"--attach-mode", "tcx"}},
	{"tc", "tc", "tc", []string{"--attach-mode", "tc"}},
}

// dpEnv is a sandbox (eth0, plus extra parents) with an agent serving
// /metrics on the sandbox's 127.0.0.1:9469, in one attach mode. Containers
// are named "<sandbox>-c..." and removed when the test ends.
type dpEnv struct {
	*env
	mode  dpMode
	flags []string // the agent's flags, given again on restart
}

func newDPEnv(t *testing.T, mode dpMode, extraParents ...string) *dpEnv {
	t.Helper()
	sb := nstest.NewSandbox(t)
	for _, p := range extraParents {
		sb.AddVeth(t, p)
	}
	cleanupContainers(t, sb.Name+"-c")
	e := &dpEnv{
		env:   &env{t: t, sb: sb, a: newAgent(t, sb)},
		mode:  mode,
		flags: append([]string{"--metrics-addr", metricsAddr}, mode.flags...),
	}
	startWith(e.a, e.flags...)
	t.Cleanup(e.cleanup)
	return e
}

// restart stops the agent (SIGTERM, clean exit) and starts it again with
// the same flags and files.
func (e *dpEnv) restart() {
	e.t.Helper()
	e.a.stop()
	startWith(e.a, e.flags...)
}

// view lends the stats tests' helpers (scrape, stats, mustPing, ...).
func (e *dpEnv) view(c1, c2 string) *statsEnv {
	return &statsEnv{t: e.t, sb: e.sb, a: e.a, c1: c1, c2: c2}
}

// wantMode: the agent attached n programs, each in the env's mode for its
// kind of link (an endpoint's is CONTAINER/IFNAME).
func (e *dpEnv) wantMode(n int) {
	e.t.Helper()
	at := e.view("", "").stats().Attachments
	if len(at) != n {
		e.t.Errorf("%d attachments; want %d: %+v", len(at), n, at)
	}
	for _, a := range at {
		want := e.mode.parent
		if strings.Contains(a.Link, "/") {
			want = e.mode.endpoint
		}
		if a.Mode != want {
			e.t.Errorf("%s %s (%s) attached in mode %q; want %q (--attach-mode %s)", a.Link, a.Hook, a.Program, a.Mode, want, e.mode.name)
		}
	}
}

// counter returns a sample of /metrics, 0 when absent (the datapath creates
// a counter's key with its first frame).
func counter(text, name string, labels map[string]string) uint64 {
	v, _ := metricValue(text, name, labels)
	return uint64(v)
}

// quietIPv6 turns IPv6 off in namespace ns, so that no router or listener
// solicitation (sent on their own, seconds after a link comes up) moves a
// counter a test compares exactly.
func quietIPv6(t *testing.T, sb *nstest.Sandbox, ns string) {
	t.Helper()
	sb.Run(t, ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
}

// sendFrames sends frame n times from link ifName of namespace ns through
// an AF_PACKET socket: exactly n frames leave the link, as arping's would.
func sendFrames(t *testing.T, ns, ifName string, frame []byte, n int) {
	t.Helper()
	for i, err := range sendEach(t, ns, ifName, frame, n) {
		if err != nil {
			t.Fatalf("send frame %d of %d on %s in %s: %v", i+1, n, ifName, ns, err)
		}
	}
}

// sendEach sends frame n times like sendFrames and returns what each send
// returned: ENOBUFS when a program on the link's egress dropped it.
func sendEach(t *testing.T, ns, ifName string, frame []byte, n int) []error {
	t.Helper()
	return sendEachWith(t, ns, ifName, frame, n, false)
}

// sendEachWith is sendEach, past the link's qdiscs and TC programs if
// bypass (PACKET_QDISC_BYPASS, which needs only CAP_NET_RAW).
func sendEachWith(t *testing.T, ns, ifName string, frame []byte, n int, bypass bool) []error {
	t.Helper()
	return sendMarked(t, ns, ifName, frame, n, bypass, 0)
}

// sendMarked is sendEachWith from a socket with SO_MARK mark (0: none;
// CAP_NET_ADMIN in the namespace is all it takes), which each frame
// carries.
func sendMarked(t *testing.T, ns, ifName string, frame []byte, n int, bypass bool, mark int) []error {
	t.Helper()
	var errs []error
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: send only
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if bypass {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
				return err
			}
		}
		if mark != 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
				return err
			}
		}
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], frame[:6])
		for range n {
			errs = append(errs, unix.Sendto(fd, frame, 0, to))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send %d frames on %s in %s: %v", n, ifName, ns, err)
	}
	return errs
}

// arpRequest is the broadcast frame arping sends: who-has target, tell
// sender (sender's MAC and address), padded to the 60-byte minimum.
func arpRequest(srcMAC net.HardwareAddr, sender, target netip.Addr) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:], 1)             // Ethernet
	binary.BigEndian.PutUint16(a[2:], unix.ETH_P_IP) // IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 1) // request
	copy(a[8:14], srcMAC)
	s, d := sender.As4(), target.As4()
	copy(a[14:18], s[:])
	copy(a[24:28], d[:])
	return f
}

// waitCounter polls /metrics until the sample reaches want (at most 3 s)
// and returns the text. A later, extra count of the frames under test must
// show too: with a marker, it then sends the marker down the same path and
// polls until the marker's own counter moved (frames on one path are
// counted in order, so by then every count of the earlier frames has been
// made; a positive control instead of a sleep). Without one the caller's
// frames were answered (a ping's reply): their whole path was counted.
func (e *dpEnv) waitCounter(name string, labels map[string]string, want uint64, m *marker) string {
	e.t.Helper()
	v := e.view("", "")
	text := pollCounter(v, name, labels, want)
	if m == nil {
		return text
	}
	sendFrames(e.t, m.ns, m.ifName, m.frame, 1)
	want = counter(text, m.name, m.labels) + 1
	text = pollCounter(v, m.name, m.labels, want)
	if got := counter(text, m.name, m.labels); got < want {
		e.t.Fatalf("marker: %s%v is %d after 3 s, want %d", m.name, m.labels, got, want)
	}
	return text
}

// marker is one frame that follows the path of the frames under test and
// moves a counter of its own.
type marker struct {
	ns, ifName string
	frame      []byte
	name       string
	labels     map[string]string
}

// pollCounter scrapes until the sample reaches want (at most 3 s).
func pollCounter(v *statsEnv, name string, labels map[string]string, want uint64) string {
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		text := v.scrape()
		if counter(text, name, labels) >= want || time.Now().After(deadline) {
			return text
		}
	}
}

// settle waits until the samples of name are the same in two scrapes
// 300 ms apart (at most 5 s): what link setup sent on its own is counted.
func (e *dpEnv) settle(name string) {
	e.t.Helper()
	v := e.view("", "")
	prev := grepLines(v.scrape(), name)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		cur := grepLines(v.scrape(), name)
		if cur == prev {
			return
		}
		prev = cur
	}
	e.t.Logf("%s still moving after 5s:\n%s", name, prev)
}

// TestDatapathBroadcast: an ARP broadcast (arping's frame, sent with an
// AF_PACKET socket) from a container counts once in the network's
// broadcast flood counter, direction tx (it leaves through the parent's
// egress; the other container still receives it), and one from the wire
// counts once, direction rx. Only one direction moves each time, so no
// frame is counted on two hooks.
func TestDatapathBroadcast(t *testing.T) {
	t.Parallel()
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			c1, c2, ep1, _ := e.pubNetPair()
			e.settle("mvlan_flood_packets_total")

			const n = 3
			const flood = "mvlan_flood_packets_total"
			lb := func(dir string) map[string]string {
				return map[string]string{"network": "pub_net", "vlan": "0", "kind": "broadcast", "direction": dir}
			}
			text := e.view("", "").scrape()
			tx0, rx0 := counter(text, flood, lb("tx")), counter(text, flood, lb("rx"))

			// From c1: n requests for an address nobody has (no reply).
			mac, _ := net.ParseMAC(ep1.MAC)
			capture := nstest.NewCapture(t, c2, "eth0")
			sendFrames(t, c1, "eth0", arpRequest(mac, netip.MustParseAddr("172.16.86.10"), netip.MustParseAddr("172.16.86.250")), n)
			if _, err := capture.Wait(2*time.Second, func(f []byte) bool {
				return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == unix.ETH_P_ARP && slices.Equal(f[6:12], []byte(mac))
			}); err != nil {
				t.Errorf("%s did not receive %s's broadcast: %v", c2, c1, err)
			}
			mcast := func(f []byte) []byte { // the same ARP request, to a multicast MAC: a flood multicast count
				f = slices.Clone(f)
				copy(f, []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01})
				return f
			}
			mlb := func(dir string) map[string]string {
				return map[string]string{"network": "pub_net", "vlan": "0", "kind": "multicast", "direction": dir}
			}
			text = e.waitCounter(flood, lb("tx"), tx0+n, &marker{c1, "eth0",
				mcast(arpRequest(mac, netip.MustParseAddr("172.16.86.10"), netip.MustParseAddr("172.16.86.250"))), flood, mlb("tx")})
			tx1, rx1 := counter(text, flood, lb("tx")), counter(text, flood, lb("rx"))
			wantDelta(t, "broadcast tx after "+strconv.Itoa(n)+" from a container", tx0, tx1, n, n)
			wantDelta(t, "broadcast rx after "+strconv.Itoa(n)+" from a container", rx0, rx1, 0, 0)

			// From the wire: a host outside asks for an address nobody has.
			foreign := net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0xfe, 0x01}
			sendFrames(t, e.sb.WirePath, "wire0", arpRequest(foreign, netip.MustParseAddr("172.16.86.200"), netip.MustParseAddr("172.16.86.250")), n)
			text = e.waitCounter(flood, lb("rx"), rx1+n, &marker{e.sb.WirePath, "wire0",
				mcast(arpRequest(foreign, netip.MustParseAddr("172.16.86.200"), netip.MustParseAddr("172.16.86.250"))), flood, mlb("rx")})
			tx2, rx2 := counter(text, flood, lb("tx")), counter(text, flood, lb("rx"))
			wantDelta(t, "broadcast rx after "+strconv.Itoa(n)+" from the wire", rx1, rx2, n, n)
			wantDelta(t, "broadcast tx after "+strconv.Itoa(n)+" from the wire", tx1, tx2, 0, 0)
			if t.Failed() {
				t.Logf("flood samples:\n%s", grepLines(text, flood))
			}
		})
	}
}

// TestDatapathHairpin: the wire namespace is a router between two mvlan
// networks (net_a on eth0, net_b on eth1; the router has .1 of each). A
// pings B through it: the pings work (routed traffic, which carries the
// router's MAC, passes the cross-network isolation) and the hairpin
// counters move by exactly the frames routed back: on net_b's parent the
// echo requests (source IP A's, source MAC the router's), on net_a's parent
// the replies (source IP B's). Nothing is dropped as cross_network.
func TestDatapathHairpin(t *testing.T) {
	t.Parallel()
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m, "eth1")
			w := e.sb.WirePath
			e.in(w, "ip", "addr", "add", "192.168.50.1/24", "dev", "wire0")
			e.in(w, "ip", "addr", "add", "192.168.60.1/24", "dev", "w-eth1")
			e.in(w, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
			e.a.ok("network", "create", "--subnet=192.168.50.0/24", "--gateway=192.168.50.1", "-o", "parent=eth0", "net_a")
			e.a.ok("network", "create", "--subnet=192.168.60.0/24", "--gateway=192.168.60.1", "-o", "parent=eth1", "net_b")
			ca, cb := e.name("a"), e.name("b")
			e.runD(ca, "net_a", "--ip=192.168.50.10")
			e.runD(cb, "net_b", "--ip=192.168.60.10")
			e.wantMode(8)

			const hp, hpBytes, drops = "mvlan_hairpin_packets_total", "mvlan_hairpin_bytes_total", "mvlan_policy_drops_total"
			lb := func(n string) map[string]string { return map[string]string{"network": n, "vlan": "0"} }
			xn := func(n string) map[string]string { return map[string]string{"network": n, "reason": "cross_network"} }
			before := e.view("", "").scrape()

			out, err := e.pingFrom(ca, "192.168.60.10", false)
			e.wantPingOK("ping net_b's container from net_a's through the router", out, exitOf(err))
			pings := 4 // pingArgs sends 4 echo requests, 98-byte frames
			after := e.waitCounter(hp, lb("net_a"), counter(before, hp, lb("net_a"))+uint64(pings), nil)

			for _, n := range []string{"net_b", "net_a"} { // requests come back on net_b's parent, replies on net_a's
				wantDelta(t, n+" hairpin packets", counter(before, hp, lb(n)), counter(after, hp, lb(n)), pings, pings)
				wantDelta(t, n+" hairpin bytes", counter(before, hpBytes, lb(n)), counter(after, hpBytes, lb(n)), pings*98, pings*98)
				wantDelta(t, n+" cross_network drops", counter(before, drops, xn(n)), counter(after, drops, xn(n)), 0, 0)
			}
			if t.Failed() {
				t.Logf("hairpin samples:\n%s\nagent log:\n%s", grepLines(after, "mvlan_hairpin"), e.a.log)
			}
		})
	}
}

// counterLines returns the samples of the datapath's counter families in a
// /metrics text: "name{labels}" -> value.
func counterLines(text string) map[string]float64 {
	m := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "mvlan_") || !strings.Contains(l, "_total") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			m[l[:i]] = v
		}
	}
	return m
}

// flatStats flattens the counters of `mvlan stats --format json`.
func flatStats(s api.Stats) map[string]uint64 {
	m := map[string]uint64{}
	add := func(k string, c api.Count) {
		m[k+" packets"], m[k+" bytes"] = c.Packets, c.Bytes
	}
	for _, v := range s.VLANs {
		add(fmt.Sprintf("vlan %s/%d rx", v.Parent, v.VLAN), v.Rx)
		add(fmt.Sprintf("vlan %s/%d tx", v.Parent, v.VLAN), v.Tx)
	}
	for _, n := range s.Networks {
		add("network "+n.Network+" rx", n.Rx)
		add("network "+n.Network+" tx", n.Tx)
		for r, c := range n.Drops {
			add("network "+n.Network+" drop "+r, c)
		}
		for _, f := range n.Flood {
			add(fmt.Sprintf("network %s flood %d %s %s", n.Network, f.VLAN, f.Kind, f.Direction), f.Count)
		}
		for _, h := range n.Hairpin {
			add(fmt.Sprintf("network %s hairpin %d", n.Network, h.VLAN), h.Count)
		}
		for _, h := range n.EastWest {
			add(fmt.Sprintf("network %s east-west %d", n.Network, h.VLAN), h.Count)
		}
	}
	for p, c := range s.Malformed {
		add("malformed "+p, c)
	}
	return m
}

// sameCounters reports every counter that differs between two readings (a
// counter only one reading has must be 0 in it).
func sameCounters[V comparable](t *testing.T, what string, before, after map[string]V) {
	t.Helper()
	var zero V
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	sorted := slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range sorted {
		if b, a := before[k], after[k]; a != b && !(a == zero && b == zero) {
			t.Errorf("%s: %s was %v before the restart, %v after; want the same", what, k, b, a)
		}
	}
}

// TestDatapathCountersSurviveRestart: counters read right after an agent
// restart equal those read right before (pinned maps, absolute values: no
// reset, no double count), in `mvlan stats` and on /metrics; the programs
// are attached once (the kernel lists one per hook); and the counters go on
// counting: a ping afterwards moves them by exactly its packets.
func TestDatapathCountersSurviveRestart(t *testing.T) {
	t.Parallel()
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			quietIPv6(t, e.sb, e.sb.Path)
			quietIPv6(t, e.sb, e.sb.WirePath)
			e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
			v := e.view(e.name("1"), e.name("2"))
			e.runD(v.c1, "pub_net", "--ip=172.16.86.10")
			e.runD(v.c2, "pub_net", "--ip=172.16.86.11")
			quietIPv6(t, e.sb, v.c1)
			quietIPv6(t, e.sb, v.c2)
			v.mustPing(v.c2, "172.16.86.10")
			neighReachable(t, e.sb, v.c1, "172.16.86.11")
			e.settle("mvlan_vlan_rx_packets_total")

			stats0, text0 := v.stats(), v.scrape()
			if flatStats(stats0)["network pub_net rx packets"] == 0 {
				t.Fatalf("pub_net counted nothing before the restart:\n%s", grepLines(text0, "mvlan_network_"))
			}
			e.restart()
			stats1, text1 := v.stats(), v.scrape()
			flat0, lines0 := flatStats(stats0), counterLines(text0)
			t.Logf("comparing %d counters of mvlan stats and %d samples of /metrics", len(flat0), len(lines0))
			sameCounters(t, "mvlan stats", flat0, flatStats(stats1))
			sameCounters(t, "/metrics", lines0, counterLines(text1))
			e.wantMode(6)
			for _, ns := range []string{e.sb.Path, v.c1, v.c2} {
				for _, hook := range []loaderHook{hookIngress, hookEgress} {
					if got := kernelProgs(t, ns, "eth0", hook); got.count() != 1 {
						t.Errorf("eth0 %s in %s after restart: the kernel lists %s; want exactly one program", hook, ns, got)
					}
				}
			}

			v.mustPing(v.c1, "172.16.86.11")
			v.wantPingCounted(stats1, v.stats())
		})
	}
}

// neighReachable waits until ns's neighbour entry for ip is REACHABLE.
// The pinged side learnt the pinger from its ARP request (STALE) and
// answered through that entry (DELAY): 5 s later it sends a unicast ARP
// probe, two frames that would otherwise fall between two reads of the
// counters. Up to ~6 s.
func neighReachable(t *testing.T, sb *nstest.Sandbox, ns, ip string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if strings.Contains(sb.Run(t, ns, "ip", "-4", "neigh", "show", ip), "REACHABLE") {
			return
		}
	}
	t.Fatalf("the neighbour entry for %s in %s did not become REACHABLE in 10 s", ip, ns)
}

type loaderHook string

const (
	hookIngress loaderHook = "ingress"
	hookEgress  loaderHook = "egress"
)

// hookProgs is what the kernel lists on one hook of a link: TCX programs
// (BPF_PROG_QUERY) and cls_bpf filters (`tc filter show`).
type hookProgs struct {
	tcx     []ebpf.ProgramID
	tc      []ebpf.ProgramID
	filters string // tc's listing, for messages
}

func (h hookProgs) count() int { return len(h.tcx) + len(h.tc) }

func (h hookProgs) ids() []ebpf.ProgramID { return append(slices.Clone(h.tcx), h.tc...) }

func (h hookProgs) String() string {
	return fmt.Sprintf("tcx programs %v, tc filters %v %q", h.tcx, h.tc, strings.TrimSpace(h.filters))
}

var tcProgID = regexp.MustCompile(`\bbpf\b.*\bid (\d+)`)

// kernelProgs asks the kernel what is attached to hook of link ifName in
// namespace ns.
func kernelProgs(t *testing.T, ns, ifName string, hook loaderHook) hookProgs {
	t.Helper()
	var h hookProgs
	attach := ebpf.AttachTCXIngress
	if hook == hookEgress {
		attach = ebpf.AttachTCXEgress
	}
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: attach})
		if err != nil {
			return fmt.Errorf("BPF_PROG_QUERY %s: %w", hook, err)
		}
		for _, p := range res.Programs {
			h.tcx = append(h.tcx, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("programs on %s %s in %s: %v", ifName, hook, ns, err)
	}
	h.filters, err = nstest.RunErr(ns, "tc", "filter", "show", "dev", ifName, string(hook))
	if err != nil {
		t.Fatalf("tc filter show dev %s %s in %s: %v\n%s", ifName, hook, ns, err, h.filters)
	}
	for _, m := range tcProgID.FindAllStringSubmatch(h.filters, -1) {
		id, _ := strconv.ParseUint(m[1], 10, 32)
		h.tc = append(h.tc, ebpf.ProgramID(id))
	}
	return h
}

// wantAttached: the kernel lists exactly one program on each hook of the
// link, attached the env's way for a parent (ns is the sandbox's) or an
// endpoint (a TCX link, or a cls_bpf filter named mvlan:...), and nothing
// attached the other way. It returns their ids.
func (e *dpEnv) wantAttached(ns, ifName string) []ebpf.ProgramID {
	e.t.Helper()
	mode := e.mode.endpoint
	if ns == e.sb.Path {
		mode = e.mode.parent
	}
	var ids []ebpf.ProgramID
	for _, hook := range []loaderHook{hookIngress, hookEgress} {
		h := kernelProgs(e.t, ns, ifName, hook)
		ours, other := h.tcx, h.tc
		if mode == "tc" {
			ours, other = h.tc, h.tcx
		}
		if len(ours) != 1 || len(other) != 0 || (mode == "tc" && !strings.Contains(h.filters, "mvlan:")) {
			e.t.Errorf("%s %s in %s: the kernel lists %s; want one %s program (--attach-mode %s)", ifName, hook, ns, h, mode, e.mode.name)
		}
		ids = append(ids, h.ids()...)
	}
	return ids
}

// wantDetached: the kernel lists no program on either hook of the link.
func (e *dpEnv) wantDetached(ns, ifName string) {
	e.t.Helper()
	for _, hook := range []loaderHook{hookIngress, hookEgress} {
		if h := kernelProgs(e.t, ns, ifName, hook); h.count() != 0 {
			e.t.Errorf("%s %s in %s: the kernel still lists %s; want nothing", ifName, hook, ns, h)
		}
	}
}

// waitFreed waits (at most 10 s: a deleted namespace is torn down by a
// kernel worker) until the kernel knows none of the programs any more:
// nothing (link, filter, pin or agent fd) holds them.
func waitFreed(t *testing.T, what string, ids []ebpf.ProgramID) {
	t.Helper()
	var alive []ebpf.ProgramID
	for deadline := time.Now().Add(10 * time.Second); ; {
		alive = alive[:0]
		for _, id := range ids {
			p, err := ebpf.NewProgramFromID(id)
			if err == nil {
				alive = append(alive, id)
				p.Close()
			} else if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("program %d: %v", id, err)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s: programs %v still exist in the kernel (of %v); want them freed", what, alive, ids)
}

// ownPrograms returns those of an endpoint's programs ids that are its
// own (its namespace's stubs): all of them, or none where they are the
// agent's shared programs, pinned under --bpffs/progs for the life of the
// build (--endpoint-programs direct, what auto picks on this kernel).
func (e *dpEnv) ownPrograms(ids []ebpf.ProgramID) []ebpf.ProgramID {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.a.dir, "bpf", "progs"))
	if err != nil {
		e.t.Fatal(err)
	}
	shared := map[ebpf.ProgramID]bool{}
	for _, d := range ents {
		p, err := ebpf.LoadPinnedProgram(filepath.Join(e.a.dir, "bpf", "progs", d.Name()), nil)
		if err != nil {
			e.t.Fatal(err)
		}
		if info, err := p.Info(); err == nil {
			id, _ := info.ID()
			shared[id] = true
		}
		p.Close()
	}
	var own []ebpf.ProgramID
	for _, id := range ids {
		if !shared[id] {
			own = append(own, id)
		}
	}
	stubs := slices.Contains(e.mode.flags, "stub") || !loader.HaveDirectPath()
	if len(ids) == 0 || (stubs && len(own) != len(ids)) || (!stubs && len(own) != 0) {
		e.t.Errorf("endpoint programs %v: %d are the agent's shared programs; want none on the stub path (%v), all on the direct one", ids, len(ids)-len(own), stubs)
	}
	return own
}

// bpffsDir lists a directory of the agent's --bpffs: links (TCX link
// pins) or qdiscs (records of the clsact qdiscs mvlan made).
func (e *dpEnv) bpffsDir(dir string) []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.a.dir, "bpf", dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}

// wantPins: a pinned TCX link for each of the parent hooks and endpoint
// hooks attached with TCX in the env's mode, and a clsact record for each
// link (one per two hooks) on tc, whose qdisc mvlan made; none of either
// of the namespace with netns cookie gone.
func (e *dpEnv) wantPins(parentHooks, endpointHooks int, gone uint64) {
	e.t.Helper()
	e.wantBpffs("links", "tcx", "pinned links", parentHooks, endpointHooks, gone)
	e.wantBpffs("qdiscs", "tc", "clsact records", parentHooks/2, endpointHooks/2, gone)
}

// wantBpffs: dir of the agent's --bpffs holds parents + endpoints
// entries (each counted when its links are attached in mode), none named
// after the namespace with netns cookie gone.
func (e *dpEnv) wantBpffs(dir, mode, what string, parents, endpoints int, gone uint64) {
	e.t.Helper()
	n := 0
	if e.mode.parent == mode {
		n += parents
	}
	if e.mode.endpoint == mode {
		n += endpoints
	}
	// A removal's link goes in the background (its entries with it): wait.
	got := e.bpffsDir(dir)
	for deadline := time.Now().Add(10 * time.Second); len(got) != n && time.Now().Before(deadline); got = e.bpffsDir(dir) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(got) != n {
		e.t.Errorf("%d %s under %s; want %d: %v", len(got), what, filepath.Join(e.a.dir, "bpf", dir), n, got)
	}
	for _, p := range got {
		if gone != 0 && strings.HasPrefix(p, strconv.FormatUint(gone, 10)+"_") {
			e.t.Errorf("%s: %s of a removed endpoint is still there", what, p)
		}
	}
}

// TestDatapathRmDetaches: rm of an endpoint and of a network leaves no
// program attached, as the kernel lists them: the endpoint's own programs
// (its stubs, on the stub path) are freed (no link, filter, pin or agent
// fd keeps them), the parent's hooks
// are empty after network rm, and no TCX link pin is left under --bpffs.
// The second endpoint and the network are removed after an agent restart,
// when the agent knows its attachments only from its pins and state. The
// stub path runs too (tc only), where the stubs must be freed.
func TestDatapathRmDetaches(t *testing.T) {
	t.Parallel()
	stub := dpMode{"tc-stub", "tc", "tc", []string{"--attach-mode", "tc", "--endpoint-programs", "stub"}}
	for _, m := range append(dpModes, stub) {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			c1, c2, ep1, ep2 := e.pubNetPair()
			e.wantAttached(e.sb.Path, "eth0")
			progs1 := e.wantAttached(c1, "eth0")
			progs2 := e.wantAttached(c2, "eth0")
			e.wantPins(2, 4, 0)

			e.a.ok("rm", "-f", c1)
			waitFreed(t, "rm -f "+c1, e.ownPrograms(progs1))
			e.wantPins(2, 2, ep1.NetnsCookie)
			e.wantAttached(e.sb.Path, "eth0")

			e.restart()
			e.wantMode(4)
			e.wantAttached(e.sb.Path, "eth0")
			now2 := e.wantAttached(c2, "eth0")
			var replaced []ebpf.ProgramID // re-attaching replaced c2's programs: the old ones must be gone
			for _, id := range progs2 {
				if !slices.Contains(now2, id) {
					replaced = append(replaced, id)
				}
			}
			waitFreed(t, "programs replaced on restart", replaced)

			e.a.ok("rm", "-f", c2)
			waitFreed(t, "rm -f "+c2+" after a restart", e.ownPrograms(now2))
			e.wantPins(2, 0, ep2.NetnsCookie)

			e.a.ok("network", "rm", "pub_net")
			e.wantDetached(e.sb.Path, "eth0")
			e.wantPins(0, 0, 0)
			if stubs, _ := os.ReadDir(filepath.Join(e.a.dir, "bpf", "stubs")); len(stubs) != 0 {
				t.Errorf("stub pins left after every endpoint went: %v", stubs)
			}
			// eth0 had no clsact qdisc: mvlan made it, and must not leave it
			// behind, restart or not (DESIGN.md: nothing leaked).
			if q := e.in(e.sb.Path, "tc", "qdisc", "show", "dev", "eth0"); strings.Contains(q, "clsact") {
				t.Errorf("network rm after an agent restart left the clsact qdisc mvlan created on eth0:\n%s", q)
			}
		})
	}
}

// pubNetPair makes pub_net on eth0 (which must have no clsact qdisc yet)
// with containers 1 (.10) and 2 (.11), and checks all 6 programs attached.
func (e *dpEnv) pubNetPair() (c1, c2 string, ep1, ep2 api.Endpoint) {
	e.t.Helper()
	if q := e.in(e.sb.Path, "tc", "qdisc", "show", "dev", "eth0"); strings.Contains(q, "clsact") {
		e.t.Fatalf("the sandbox's eth0 has a clsact qdisc before mvlan ran: %s", q)
	}
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	c1, c2 = e.name("1"), e.name("2")
	ep1 = e.runD(c1, "pub_net", "--ip=172.16.86.10")
	ep2 = e.runD(c2, "pub_net", "--ip=172.16.86.11")
	e.wantMode(6)
	return c1, c2, ep1, ep2
}

// nsClient is an HTTP client whose connections are made inside namespace ns.
func nsClient(ns string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		err = nstest.In(ns, func() error {
			var d net.Dialer
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// lockedBuffer collects a process's output for messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

// Count counts sub in everything written so far.
func (l *lockedBuffer) Count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(string(l.b), sub)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.b)
	if len(s) > 4000 {
		s = "...\n" + s[len(s)-4000:]
	}
	return s
}

// TestDatapathPrometheus: a real Prometheus (Debian's), running inside the
// sandbox, scrapes the agent every second, and the PromQL query of the
// per-VLAN counter returns eth0's VLAN 0 with the pings counted: /metrics
// read directly moved by the pings' frames, and Prometheus's one series
// has at least the value read then (more: the wire's own IPv6 start-up
// multicast, router solicitations seconds apart, comes in on eth0 too).
func TestDatapathPrometheus(t *testing.T) {
	t.Parallel()
	nstest.RequireRoot(t)
	prometheusBin(t)
	e := newStatsEnv(t)
	labels := map[string]string{"parent": "eth0", "vlan": "0"}
	before := counter(e.scrape(), "mvlan_vlan_rx_packets_total", labels)
	e.mustPing(e.c2, "172.16.86.10")
	direct := counter(e.scrape(), "mvlan_vlan_rx_packets_total", labels)
	wantDelta(t, "eth0 vlan 0 rx packets on /metrics", before, direct, 2*pings, 2*pings+arpSlack)
	p := startPrometheus(t, e.sb)
	q := `mvlan_vlan_rx_packets_total{parent="eth0", vlan="0", job="mvlan"}`
	r := p.waitQuery(q, 20*time.Second, func(r []promSample) bool {
		return len(r) == 1 && r[0].Value >= float64(direct)
	})
	t.Logf("PromQL %s: %v; /metrics after the pings: %d", q, r, direct)
}

// TestRestartTrustsAttachments: an agent restarted over endpoints whose
// filters already run their programs (the default mode puts them on
// clsact) changes nothing on their links: tc monitor in a container's
// namespace sees no event on its eth0 before a marker the test makes
// after the restart, the programs on its hooks are the same ones, and
// they still drop its spoofed frames. A filter someone removed meanwhile
// is put back.
func TestRestartTrustsAttachments(t *testing.T) {
	t.Parallel()
	e := newDPEnv(t, dpModes[0])
	c1, c2, _, _ := e.pubNetPair()
	before := e.wantAttached(c1, "eth0")
	e.in(c2, "tc", "filter", "del", "dev", "eth0", "egress") // lost while the agent was down

	mon := exec.Command("nsenter", "--net=/run/netns/"+c1, "tc", "monitor")
	var events lockedBuffer
	mon.Stdout, mon.Stderr = &events, &events
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mon.Process.Kill(); _ = mon.Wait() }()
	e.restart()
	e.wantAttached(c2, "eth0") // put back
	// The marker: a qdisc on c1's lo, added and deleted by the test; what
	// tc monitor printed before it, the restart did.
	e.in(c1, "tc", "qdisc", "add", "dev", "lo", "clsact")
	e.in(c1, "tc", "qdisc", "del", "dev", "lo", "clsact")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(events.String(), "dev lo") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	seen, _, found := strings.Cut(events.String(), "dev lo")
	if !found {
		t.Fatalf("tc monitor in %s never showed the marker on lo:\n%s", c1, events.String())
	}
	if strings.Contains(seen, "eth0") {
		t.Errorf("the restart changed %s's eth0:\n%s", c1, seen)
	}
	if after := e.wantAttached(c1, "eth0"); !slices.Equal(before, after) {
		t.Errorf("programs on %s after the restart: %v; want the same as before, %v", c1, after, before)
	}
	// c1's kept programs still pass its traffic and drop (and count) a
	// spoofed source: 2 echo requests from it, 2 ip_spoof drops.
	sv := e.view(c1, c2)
	sv.mustPing(c1, "172.16.86.11")
	labels := map[string]string{"network": "pub_net", "reason": "ip_spoof"}
	e.in(c1, "ip", "addr", "add", "172.16.86.99/24", "dev", "eth0")
	if out, err := nstest.RunErr("/run/netns/"+c1, "ping", "-c", "2", "-W", "1", "-I", "172.16.86.99", "172.16.86.11"); err == nil {
		t.Errorf("a spoofed ping from %s got through after the restart:\n%s", c1, out)
	}
	drops, _ := metricValue(sv.scrape(), "mvlan_policy_drops_total", labels)
	sendSpoofed(t, c1, "172.16.86.99", "172.16.86.11", 2)
	after, _ := metricValue(sv.scrape(), "mvlan_policy_drops_total", labels)
	wantDelta(t, "ip_spoof drops after the restart for 2 spoofed echo requests", uint64(drops), uint64(after), 2, 2)
}
