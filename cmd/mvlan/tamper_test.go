package main

// Privileged end-to-end tests of the receiver-side checks (issue 13): a
// container that is root in its namespace switches off the programs on
// its own link, and its spoofed frames still reach neither a neighbour nor
// the wire.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestTamperSender: container 1 removes the programs on its own link the
// way its attach mode allows (tc qdisc del dev eth0 clsact; in TCX mode a
// program of its own attached before mvlan's that passes everything), and
// its sends of spoofed frames are no longer refused. They are still
// dropped: an ARP request to container 2 claiming the router's address
// (arp_spoof, on container 2's ingress: no neighbour entry for the router
// with container 1's MAC), and a ping with a foreign source toward the
// router (ip_spoof, on the parent's egress: a marker sent after it reaches
// the wire, it does not), and a frame with an 802.1Q tag, toward the wire
// (the parent's egress) and toward container 2 (its ingress; vlan_tag).
// Each reason moves by exactly 3. The control: the
// same ARP request with container 1's own address does make its entry.
func TestTamperSender(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e, c1, c2, g := tamperEnv(t, m, false)
			if m.endpoint == "tc" {
				e.in(c1, "tc", "qdisc", "del", "dev", "eth0", "clsact")
			} else {
				passFirst(t, c1, "eth0")
			}
			router := addr("172.16.86.1")
			c2MAC := nstest.MAC(t, g.peer.MAC)
			poison := arpRequestTo(c2MAC, g.mac, router, addr("172.16.86.11"))
			g.tampered(poison)
			g.droppedBy("arp_spoof", poison, c2)
			if n := e.in(c2, "ip", "neigh", "show", "172.16.86.1"); strings.Contains(n, g.mac.String()) {
				t.Errorf("%s took %s for the router's MAC:\n%s", c2, g.mac, n)
			}
			spoofed := udp4Frame(g.mac, addr("172.16.86.99"), addr("198.51.100.7"), 40000, 9, make([]byte, 32))
			copy(spoofed, nstest.MAC(t, "02:00:5e:00:53:01")) // to the router
			g.droppedBy("ip_spoof", spoofed, "the wire")
			hop := vlanTagged(udp4Frame(g.mac, g.v4, addr("198.51.100.7"), 40000, 9, make([]byte, 32)), 5)
			copy(hop, nstest.MAC(t, "02:00:5e:00:53:01")) // to the router, in VLAN 5
			g.droppedBy("vlan_tag", hop, "the wire")
			copy(hop, c2MAC)
			g.droppedBy("vlan_tag", hop, c2)
			sendFrames(t, c1, "eth0", arpRequestTo(c2MAC, g.mac, g.v4, addr("172.16.86.11")), 1)
			if !waitFor(5*time.Second, func() bool { return strings.Contains(e.in(c2, "ip", "neigh", "show", "172.16.86.10"), g.mac.String()) }) {
				t.Errorf("the legitimate ARP request made no entry for %s in %s (the control)", g.mac, c2)
			}
		})
	}
}

// TestTamperNestedMacvlan: container 1 makes a macvlan of its own on eth0
// (it lands on the host's parent, with no mvlan program; the tamper check
// is off here). On the direct path (what auto picks on this kernel) the
// parent's programs tell its frames by their socket's namespace, one
// with endpoints: its unicast ARP claiming container 3's address, which
// crosses the parent's receive path, is dropped there (mac_spoof), and
// its broadcast gratuitous ARP for the
// router's address is dropped on its way to the wire (mac_spoof, the send
// refused) and at each bridge port it reaches straight (unknown_source,
// 3 x 3: containers 1, 2 and 3). On the stub path the unicast is marked
// as from the wire and dropped for its claim (arp_spoof), and the
// broadcast is dropped on its way to the wire as a claim of the network's
// gateway (arp_spoof) and at each bridge port as on the direct path.
// Container 2's entry for the router keeps the router's MAC, and no entry
// has the nested link's.
func TestTamperNestedMacvlan(t *testing.T) {
	stub := dpMode{"tc-stub", "tc", "tc", []string{"--attach-mode", "tc", "--endpoint-programs", "stub"}}
	for _, m := range append(slices.Clone(dpModes), stub) {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			direct := m.name != stub.name
			e, c1, c2, g := tamperEnv(t, m, false)
			evil := nstest.MAC(t, "02:00:5e:00:53:66")
			e.in(c1, "ip", "link", "add", "link", "eth0", "name", "evil", "address", evil.String(), "type", "macvlan", "mode", "bridge")
			// Quiet: no IPv6 of its own (its RS and MLD would count too).
			e.in(c1, "sysctl", "-q", "-w", "net.ipv6.conf.evil.disable_ipv6=1")
			e.in(c1, "ip", "link", "set", "evil", "up")
			g.ifName, g.mac = "evil", evil
			claim := arpRequestTo(nstest.MAC(t, g.peer.MAC), evil, addr("172.16.86.12"), addr("172.16.86.11"))
			if direct {
				g.droppedBy("mac_spoof", claim, c2)
			} else {
				g.droppedBy("arp_spoof", claim, c2)
			}
			if n := e.in(c2, "ip", "neigh", "show", "172.16.86.12"); strings.Contains(n, evil.String()) {
				t.Errorf("%s took the nested link's %s for container 3's MAC:\n%s", c2, evil, n)
			}
			// Container 2 knows the router; a gratuitous ARP would replace
			// its entry (locktime 0: at once).
			e.in(c2, "sysctl", "-q", "-w", "net.ipv4.neigh.eth0.locktime=0")
			e.in(c2, "ip", "neigh", "replace", "172.16.86.1", "lladdr", "02:00:5e:00:53:01", "dev", "eth0", "nud", "stale")
			// Its gratuitous ARP for the router: the neighbours drop it
			// (unknown_source, 3 x 3), the parent keeps it from the wire,
			// as the foreign MAC of a container's socket (direct build) or
			// as a claim of the pinned gateway (either build).
			garp := arpRequest(evil, addr("172.16.86.1"), addr("172.16.86.1"))
			atWire := "mac_spoof"
			if !direct {
				atWire = "arp_spoof"
			}
			unknown := map[string]string{"network": g.net, "reason": "unknown_source"}
			before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", unknown)
			g.droppedBy(atWire, garp, "the wire")
			e.waitCounter("mvlan_policy_drops_total", unknown, before+9, nil)
			if got := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", unknown); got != before+9 {
				t.Errorf("unknown_source moved by %d with the broadcasts; want 9", got-before)
			}
			if n := e.in(c2, "ip", "neigh", "show", "172.16.86.1"); !strings.Contains(n, "02:00:5e:00:53:01") {
				t.Errorf("%s's entry for the router changed:\n%s", c2, n)
			}
		})
	}
}

// TestTamperQdiscBypass: container 1, with CAP_NET_RAW only, sends past
// its own programs with PACKET_QDISC_BYPASS (TC skipped). On the direct
// path its frames are still held to its MAC: to the router, a frame with
// a made-up MAC and one with container 2's MAC are dropped on the parent
// (mac_spoof, the send refused) and never reach the wire; a frame with
// its own MAC and a spoofed address is dropped there too (ip_spoof, the
// parent's check of a container's MAC).
func TestTamperQdiscBypass(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e, _, _, g := tamperEnv(t, m, false)
			g.bypass = true
			router := nstest.MAC(t, "02:00:5e:00:53:01")
			toRouter := func(src net.HardwareAddr, ip string) []byte {
				f := udp4Frame(src, addr(ip), addr("198.51.100.7"), 40000, 9, make([]byte, 32))
				copy(f, router)
				return f
			}
			g.droppedBy("mac_spoof", toRouter(nstest.MAC(t, "02:00:5e:00:53:99"), "172.16.86.10"), "the wire")
			g.droppedBy("mac_spoof", toRouter(nstest.MAC(t, g.peer.MAC), "172.16.86.11"), "the wire")
			g.droppedBy("ip_spoof", toRouter(g.mac, "172.16.86.99"), "the wire")
			// Its own MAC and address on another network (parent eth1)
			// leave through that network's parent only.
			e.sb.AddVeth(t, "eth1")
			e.a.ok("network", "create", "--subnet=172.16.87.0/24", "-o", "parent=eth1", "tm2")
			e.a.ok("connect", "--ip=172.16.87.10", "--mac=02:00:5e:00:53:77", "--ifname=eth1", "tm2", "/run/netns/"+g.c)
			g.droppedBy("mac_spoof", toRouter(nstest.MAC(t, "02:00:5e:00:53:77"), "172.16.87.10"), "the wire")
		})
	}
}

// TestTamperRepair: with the agent's tamper check on (its default, every
// 500 ms), each tamper route is detected within 1 s, counted in
// mvlan_datapath_tamper_total{reason}, repaired where mvlan can
// (mvlan_datapath_reattach_total{reason}) and shown by mvlan doctor:
// clsact deleted (tc endpoints: the programs come back, a spoofed send is
// refused again), a TCX program before mvlan's (mvlan's is first again and
// a spoofed send is refused; tc endpoints: that hook moves to TCX, which
// runs before every tc filter), a nested macvlan (deleted; also with an mvlan/ alias),
// eth0's MAC changed to the router's (set back to the stored one) and a
// filter of a root qdisc of the container's (deleted).
// Once the container is removed, doctor lists no tamper.
func TestTamperRepair(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e, c1, _, g := tamperEnv(t, m, true)
			e.wantDrift("tamper", 0) // no drift at all before the tampers
			// Straight to container 2 (bridge mode): only container 1's own
			// egress program can refuse the send.
			spoof := arpRequestTo(nstest.MAC(t, g.peer.MAC), g.mac, addr("172.16.86.1"), addr("172.16.86.11"))
			if m.endpoint == "tc" {
				e.detected("detached", 2, true, func() { e.in(c1, "tc", "qdisc", "del", "dev", "eth0", "clsact") }) // both hooks
				if errs := sendEach(t, c1, "eth0", spoof, 1); !errors.Is(errs[0], unix.ENOBUFS) {
					t.Errorf("after the repair a spoofed send returned %v; want ENOBUFS (refused by the re-attached program)", errs[0])
				}
			}
			e.detected("foreign_first", 1, true, func() { passFirst(t, c1, "eth0") })
			if errs := sendEach(t, c1, "eth0", spoof, 1); !errors.Is(errs[0], unix.ENOBUFS) {
				t.Errorf("with mvlan's program first again a spoofed send returned %v; want ENOBUFS", errs[0])
			}
			if m.endpoint == "tc" && !strings.Contains(e.view("", "").scrape(), `link="`+c1+`/eth0",hook="egress",mode="tcx"`) {
				t.Errorf("%s/eth0's egress is not shown attached by TCX after the repair (mvlan_attach_info)", c1)
			}
			e.detected("nested_link", 1, true, func() {
				e.in(c1, "ip", "link", "add", "link", "eth0", "name", "evil", "type", "macvlan", "mode", "bridge")
			})
			if out, err := nstest.RunErr(c1, "ip", "link", "show", "evil"); err == nil {
				t.Errorf("the nested link is still there:\n%s", out)
			}
			// The same with mvlan's alias: the container sets any alias.
			e.detected("nested_link", 1, true, func() {
				e.in(c1, "ip", "link", "add", "link", "eth0", "name", "evil2", "type", "macvlan", "mode", "bridge")
				e.in(c1, "ip", "link", "set", "evil2", "alias", "mvlan/x/ep/y")
			})
			if out, err := nstest.RunErr(c1, "ip", "link", "show", "evil2"); err == nil {
				t.Errorf("the nested link with alias mvlan/x/ep/y is still there:\n%s", out)
			}
			// The router's MAC on eth0 (bridge mode would deliver the
			// neighbours' frames for the router to it): set back.
			e.detected("mac_changed", 1, true, func() { e.in(c1, "ip", "link", "set", "eth0", "address", "02:00:5e:00:53:01") })
			if mac := linkMAC(t, c1, "eth0"); mac != g.mac.String() {
				t.Errorf("eth0's MAC is %s after the repair, want the stored %s", mac, g.mac)
			}
			// A filter of a root qdisc of its own runs after mvlan's check
			// and could rewrite frames: deleted, the qdisc left.
			e.detected("late_filter", 1, true, func() {
				e.in(c1, "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb")
				e.in(c1, "tc", "filter", "add", "dev", "eth0", "parent", "1:", "bpf", "bytecode", "1,6 0 0 0,")
			})
			if out := e.in(c1, "tc", "filter", "show", "dev", "eth0", "parent", "1:"); out != "" {
				t.Errorf("the root qdisc's filter is still there:\n%s", out)
			}
			if out := e.in(c1, "tc", "qdisc", "show", "dev", "eth0", "root"); !strings.Contains(out, "htb 1:") {
				t.Errorf("the container's root qdisc went with its filter:\n%s", out)
			}
			if d := strings.Join(drift(t, e.a), "\n"); !strings.Contains(d, "tampered with") {
				t.Errorf("mvlan doctor does not show the tamper:\n%s", d)
			}
			e.wantDrift("tamper", 1) // container 1
			// Gone with the container: nothing left to act on.
			e.a.ok("rm", "-f", c1)
			for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
				d := strings.Join(drift(t, e.a), "\n")
				if !strings.Contains(d, "tampered with") {
					break
				}
				if time.Since(start) > 2*time.Second {
					t.Fatalf("mvlan doctor still shows the tamper 2 s after rm of %s:\n%s", c1, d)
				}
			}
		})
	}
}

// detected runs tamper and waits at most 1 s for
// mvlan_datapath_tamper_total{reason} to move by n from its count before
// the tamper (one per hook or link), and checks that it moved by exactly n
// and mvlan_datapath_reattach_total{reason} with it when the tamper is
// repairable.
func (e *dpEnv) detected(reason string, n uint64, repaired bool, tamper func()) {
	e.t.Helper()
	labels := map[string]string{"reason": reason}
	v := e.view("", "")
	text := v.scrape()
	before, rbefore := counter(text, "mvlan_datapath_tamper_total", labels), counter(text, "mvlan_datapath_reattach_total", labels)
	tamper() // after the counts before it: the check may find it before the next scrape
	start := time.Now()
	text = v.scrape()
	for counter(text, "mvlan_datapath_tamper_total", labels) < before+n {
		if time.Since(start) > time.Second {
			e.t.Fatalf("%s not detected within 1 s (mvlan_datapath_tamper_total%v %d, want %d)", reason, labels,
				counter(text, "mvlan_datapath_tamper_total", labels), before+n)
		}
		time.Sleep(20 * time.Millisecond)
		text = v.scrape()
	}
	e.t.Logf("%s detected after %v", reason, time.Since(start).Round(10*time.Millisecond))
	time.Sleep(600 * time.Millisecond) // one more check: a repair that did not hold would count again
	text = v.scrape()
	if got := counter(text, "mvlan_datapath_tamper_total", labels); got != before+n {
		e.t.Errorf("mvlan_datapath_tamper_total%v = %d, want %d", labels, got, before+n)
	}
	want := rbefore
	if repaired {
		want += n
	}
	if got := counter(text, "mvlan_datapath_reattach_total", labels); got != want {
		e.t.Errorf("mvlan_datapath_reattach_total%v = %d, want %d", labels, got, want)
	}
}

// wantDrift waits at most 20 s (a scrape starts a drift check, at nice
// 10, when the last is 10 s old; the next scrape reports it) for /metrics
// to report n drift findings of kind, and 0 of every other kind.
func (e *dpEnv) wantDrift(kind string, n float64) {
	e.t.Helper()
	v := e.view("", "")
	start := time.Now()
	for {
		got := map[string]float64{}
		text := v.scrape()
		for _, k := range []string{"endpoint", "ipam", "index", "link", "quarantine", "tamper", "cluster"} {
			got[k] = -1
			if x, ok := metricValue(text, "mvlan_drift", map[string]string{"kind": k}); ok {
				got[k] = x
			}
		}
		want := map[string]float64{"endpoint": 0, "ipam": 0, "index": 0, "link": 0, "quarantine": 0, "tamper": 0, "cluster": 0}
		want[kind] = n
		if maps.Equal(got, want) {
			e.t.Logf("mvlan_drift{kind=%q} %v after %v", kind, n, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Since(start) > 20*time.Second {
			e.t.Fatalf("mvlan_drift by kind is %v; want %v (-1: not exported)", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tamperEnv: network tm on eth0 with containers 1 (.10), 2 (.11) and 3
// (.12); a guardEnv sending from container 1, container 2 its peer. With
// check false the agent's tamper check is off, so that a tamper stays
// while the receiver-side checks are tested alone.
func tamperEnv(t *testing.T, m dpMode, check bool) (*dpEnv, string, string, *guardEnv) {
	if !check {
		m.flags = append(slices.Clone(m.flags), "--tamper-check", "0")
	}
	e := newDPEnv(t, m)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "tm")
	c1, c2 := e.name("1"), e.name("2")
	ep1 := e.runD(c1, "tm", "--ip=172.16.86.10")
	g := newGuardEnv(e, ep1)
	g.peer = e.runD(c2, "tm", "--ip=172.16.86.11")
	e.runD(e.name("3"), "tm", "--ip=172.16.86.12")
	return e, c1, c2, g
}

// tampered: the frame now leaves container 1 (its own programs no longer
// refuse it).
func (g *guardEnv) tampered(frame []byte) {
	g.e.t.Helper()
	for _, err := range sendEach(g.e.t, g.c, g.ifName, frame, 1) {
		if err != nil {
			g.e.t.Fatalf("after the tamper, the send still fails (%v): the tamper did not take", err)
		}
	}
}

// linkMAC is the MAC of ifName in namespace ns.
func linkMAC(t *testing.T, ns, ifName string) string {
	t.Helper()
	var mac string
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err == nil {
			mac = ifi.HardwareAddr.String()
		}
		return err
	})
	if err != nil {
		t.Fatalf("MAC of %s in %s: %v", ifName, ns, err)
	}
	return mac
}

// passFirst attaches, in namespace ns, a TCX egress program before all
// others on ifName that passes every frame (TCX_PASS: the programs after
// it do not run), as a container with CAP_NET_ADMIN could; it is detached
// when the test ends.
func passFirst(t *testing.T, ns, ifName string) {
	t.Helper()
	passFirstWith(t, ns, ifName, passProgram(t))
}

// passProgram loads a program that passes every frame (TCX_PASS),
// closed when the test ends.
func passProgram(t *testing.T) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// passFirstWith is passFirst with a program loaded already.
func passFirstWith(t *testing.T, ns, ifName string, prog *ebpf.Program) {
	t.Helper()
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: prog, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	})
	if err != nil {
		t.Fatalf("attach a pass-first program on %s in %s: %v", ifName, ns, err)
	}
}

// TestTamperLoadedBefore: a container loads its pass-through program,
// waits, and only then attaches it ahead of mvlan's with TCX: no new
// program appears at the attach, and a TCX attach sends no notification.
// The agent notes TCX attaches of other processes (loader WatchTCX) and
// finds it within 1 s as it finds a new one (TestTamperRepair), not in
// its rolling pass (30 s); the repair puts mvlan's program first again.
// Other tests' programs loaded meanwhile would have the agent look too:
// its log must say that it heard the attach (loader's TestWatchTCX counts
// exactly).
func TestTamperLoadedBefore(t *testing.T) {
	t.Parallel()
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			m.flags = append(slices.Clone(m.flags), "--log-level", "debug")
			e, c1, _, g := tamperEnv(t, m, true)
			prog := passProgram(t)
			time.Sleep(1200 * time.Millisecond) // checks have seen the program loaded, attached nowhere
			e.detected("foreign_first", 1, true, func() { passFirstWith(t, c1, "eth0", prog) })
			spoof := arpRequestTo(nstest.MAC(t, g.peer.MAC), g.mac, addr("172.16.86.1"), addr("172.16.86.11"))
			if errs := sendEach(t, c1, "eth0", spoof, 1); !errors.Is(errs[0], unix.ENOBUFS) {
				t.Errorf("with mvlan's program first again a spoofed send returned %v; want ENOBUFS", errs[0])
			}
			e.a.stop() // its log is whole once it has exited
			if log := e.a.log.String(); !strings.Contains(log, "another process attached a program to a TCX hook") {
				t.Errorf("the agent's log does not say it heard a TCX attach:\n%s", log)
			}
			startWith(e.a, e.flags...)
		})
	}
}

// arpRequestTo is an ARP request sent to dst's MAC: who-has target, tell
// sender at srcMAC.
func arpRequestTo(dst, srcMAC net.HardwareAddr, sender, target netip.Addr) []byte {
	f := arpRequest(srcMAC, sender, target)
	copy(f, dst)
	return f
}

// TestTamperAlias: a container with CAP_NET_ADMIN changes its link's alias
// (mvlan's mark: ip link set eth0 alias x). The agent still knows the link
// by its stored ifindex: a restart re-attaches it (no second link), and
// removal deletes it and frees its address, both for a namespace someone
// else made (disconnect) and for one of mvlan's that a process still holds
// after rm -f (here the test holds it open).
func TestTamperAlias(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	xp := nstest.NewNetns(t, e.sb.Name+"-x1")
	e.a.ok("connect", "--ip=172.16.86.10", "pub_net", xp)
	c1 := e.name("1")
	e.runD(c1, "pub_net", "--ip=172.16.86.11")
	held, err := os.Open("/run/netns/" + c1)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPath := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), held.Fd())
	for _, ns := range []string{xp, c1} {
		e.in(ns, "ip", "link", "set", "eth0", "alias", "x")
	}

	e.a.stop()
	e.a.start()
	for _, ns := range []string{xp, c1} {
		if n := strings.Count(e.in(ns, "ip", "-o", "link", "show", "type", "macvlan"), "\n"); n != 1 {
			t.Errorf("%s has %d macvlans after a restart, want its one eth0:\n%s", ns, n, e.in(ns, "ip", "-o", "link"))
		}
	}

	e.a.ok("disconnect", "pub_net", xp)
	e.a.ok("rm", "-f", c1)
	for ns, what := range map[string]string{xp: "disconnect", heldPath: "rm -f"} {
		if !waitFor(5*time.Second, func() bool { return !strings.Contains(e.in(ns, "ip", "-o", "link"), "eth0") }) {
			t.Errorf("after %s, its namespace still has eth0 (alias changed):\n%s", what, e.in(ns, "ip", "-o", "addr"))
		}
	}
	// The addresses are free, and no link still has them.
	e.runD(e.name("2"), "pub_net", "--ip=172.16.86.10")
	e.runD(e.name("3"), "pub_net", "--ip=172.16.86.11")
	out, err := e.pingFrom(e.name("2"), "172.16.86.11", false)
	e.wantPingOK("ping the container that took the freed address", out, exitOf(err))
}

// TestFirstARP: a new container's first frame, the gratuitous ARP the
// kernel sends as its link comes up, reaches its neighbour (which takes
// it, arp_accept=1) although receivers drop frames from MACs the endpoint
// table does not know: the engine writes the entry before the link comes
// up. No unknown_source drop is counted. About 2 s per mode.
func TestFirstARP(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "fa")
			c1, c2 := e.name("1"), e.name("2")
			e.runD(c2, "fa", "--ip=172.16.86.11")
			e.in(c2, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_accept=1")
			ep1 := e.runD(c1, "fa", "--ip=172.16.86.10")
			if !waitFor(2*time.Second, func() bool { return strings.Contains(e.in(c2, "ip", "neigh", "show", "172.16.86.10"), ep1.MAC) }) {
				t.Errorf("%s has no entry for %s's address from its gratuitous ARP:\n%s", c2, c1, e.in(c2, "ip", "neigh"))
			}
			labels := map[string]string{"network": "fa", "reason": "unknown_source"}
			if n := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels); n != 0 {
				t.Errorf("mvlan_policy_drops_total%v = %d, want 0", labels, n)
			}
		})
	}
}

// TestMacvlanParentGuarded: a network on mv0, a macvlan of eth0. The
// kernel puts the containers' macvlans on eth0's port, so their frames
// never cross mv0: the parent programs and the parents row are eth0's.
// Container 1 makes a macvlan of its own (the tamper check is off); its
// gratuitous ARP for the router is dropped on its way to the wire
// (mac_spoof, the send refused), as on a network on eth0 itself.
func TestMacvlanParentGuarded(t *testing.T) {
	t.Parallel()
	m := dpModes[0]
	m.flags = append(slices.Clone(m.flags), "--tamper-check", "0")
	e := newDPEnv(t, m)
	e.in(e.sb.Path, "ip", "link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "bridge")
	e.in(e.sb.Path, "ip", "link", "set", "mv0", "up")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=mv0", "tm")
	c1 := e.name("1")
	g := newGuardEnv(e, e.runD(c1, "tm", "--ip=172.16.86.10"))
	g.peer = e.runD(e.name("2"), "tm", "--ip=172.16.86.11")
	eth0, mv0 := linkIndex(t, e.sb.Path, "eth0"), linkIndex(t, e.sb.Path, "mv0")
	if rows := parentRows(t, e.a); !slices.Contains(rows, uint32(eth0)) || slices.Contains(rows, uint32(mv0)) {
		t.Errorf("parents rows %v; want eth0's (%d), not mv0's (%d)", rows, eth0, mv0)
	}
	evil := nstest.MAC(t, "02:00:5e:00:53:66")
	e.in(c1, "ip", "link", "add", "link", "eth0", "name", "evil", "address", evil.String(), "type", "macvlan", "mode", "bridge")
	e.in(c1, "sysctl", "-q", "-w", "net.ipv6.conf.evil.disable_ipv6=1")
	e.in(c1, "ip", "link", "set", "evil", "up")
	g.ifName, g.mac = "evil", evil
	g.droppedBy("mac_spoof", arpRequest(evil, addr("172.16.86.1"), addr("172.16.86.1")), "the wire")
}
