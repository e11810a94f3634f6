package main

// Privileged end-to-end tests of a container that switches its own link
// to macvlan source mode: the kernel then hands the link a copy of every
// frame from the MACs it lists (a neighbour's, the gateway's), and with
// the nodst flag keeps the frames from their destination.

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// etherLocal is the local experimental ethertype (IEEE 802): no stack
// answers a frame of it, so the frames of these tests move no counter but
// the one under test.
const etherLocal = 0x88b5

// TestForeignDst: container 1 (the tamper check off, so the tamper stays)
// switches its eth0 to macvlan source mode listing the router's MAC and
// container 2's. Three frames from the router (the wire) to container 2
// and three from container 2 to container 3 reach their destinations;
// container 1's copies of them are dropped on its ingress (foreign_dst,
// exactly 6): a socket of container 1 bound to their ethertype, which the
// kernel serves after TC, sees none of them, and sees the router's frame
// to container 1's own MAC sent after them (a frame for the endpoint's
// own MAC passes).
func TestForeignDst(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e, c1, c2, g := tamperEnv(t, m, false)
			c3, ep3 := third(t, e)
			router, c2MAC, c3MAC := nstest.MAC(t, "02:00:5e:00:53:01"), nstest.MAC(t, g.peer.MAC), nstest.MAC(t, ep3.MAC)
			e.in(c1, "ip", "link", "set", "eth0", "type", "macvlan", "mode", "source", "macaddr", "set", router.String(), c2MAC.String())
			wantMacvlan(t, e, c1, "mode source", "remotes (2)")
			at1 := nstest.NewCaptureOf(t, c1, "eth0", etherLocal)
			at2, at3 := nstest.NewCapture(t, c2, "eth0"), nstest.NewCapture(t, c3, "eth0")
			labels := map[string]string{"network": g.net, "reason": "foreign_dst"}
			before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
			sendFrames(t, e.sb.WirePath, "wire0", localFrame(c2MAC, router, "mvlan-foreign-wire"), 3)
			sendFrames(t, c2, "eth0", localFrame(c3MAC, c2MAC, "mvlan-foreign-eastwest"), 3)
			for where, c := range map[string]*nstest.Capture{c2: at2, c3: at3} {
				if _, err := c.Wait(3*time.Second, func(f []byte) bool { return strings.Contains(string(f), "mvlan-foreign-") }); err != nil {
					t.Errorf("%s: its frames never arrived: %v", where, err)
				}
			}
			text := e.waitCounter("mvlan_policy_drops_total", labels, before+6, nil)
			if got := counter(text, "mvlan_policy_drops_total", labels); got != before+6 {
				t.Errorf("mvlan_policy_drops_total%v went from %d to %d; want +6 (container 1's copies)", labels, before, got)
			}
			sendFrames(t, e.sb.WirePath, "wire0", localFrame(g.own, router, "mvlan-foreign-own"), 1)
			leaked := false
			_, err := at1.Wait(3*time.Second, func(f []byte) bool {
				leaked = leaked || strings.Contains(string(f), "mvlan-foreign-wire") || strings.Contains(string(f), "mvlan-foreign-eastwest")
				return strings.Contains(string(f), "mvlan-foreign-own")
			})
			if err != nil {
				t.Errorf("%s: the router's frame for its own MAC never arrived: %v", c1, err)
			}
			if leaked {
				t.Errorf("%s's stack received a copy of a frame for another MAC", c1)
			}
		})
	}
}

// TestTamperSourceRepair: with the agent's tamper check on, container 1
// switches its eth0 to macvlan source mode with the nodst flag, listing
// container 2's MAC (which keeps container 2's frames from their
// destination). Within 1 s that is counted and repaired (mode_changed):
// eth0 is in bridge mode again, without the flag or the list, mvlan
// doctor shows the tamper, and container 2's frames to container 3 reach
// it. The flag alone, set next, is a tamper again and is cleared too.
func TestTamperSourceRepair(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e, c1, c2, g := tamperEnv(t, m, true)
			c3, ep3 := third(t, e)
			c2MAC, c3MAC := nstest.MAC(t, g.peer.MAC), nstest.MAC(t, ep3.MAC)
			e.detected("mode_changed", 1, true, func() {
				e.in(c1, "ip", "link", "set", "eth0", "type", "macvlan", "mode", "source", "flag", "nodst", "macaddr", "set", c2MAC.String())
			})
			repaired := func() {
				t.Helper()
				out := e.in(c1, "ip", "-d", "link", "show", "eth0")
				if !strings.Contains(out, "macvlan mode bridge ") || strings.Contains(out, "nodst") || strings.Contains(out, "remotes") {
					t.Errorf("eth0 in %s after the repair:\n%s\nwant bridge mode, no nodst flag, no source MACs", c1, out)
				}
			}
			repaired()
			at3 := nstest.NewCapture(t, c3, "eth0")
			sendFrames(t, c2, "eth0", localFrame(c3MAC, c2MAC, "mvlan-after-repair"), 3)
			if _, err := at3.Wait(3*time.Second, func(f []byte) bool { return strings.Contains(string(f), "mvlan-after-repair") }); err != nil {
				t.Errorf("%s: %s's frames never arrived after the repair: %v", c3, c2, err)
			}
			shown := false
			for _, c := range driftChecks(t, e.a) {
				if strings.Contains(c.Detail, "mode_changed") {
					shown = true
					if !strings.Contains(c.Impact, "a container changed its link") {
						t.Errorf("mvlan doctor's advice on the tamper: %q; want it to say a container changed its link", c.Impact)
					}
				}
			}
			if !shown {
				t.Errorf("mvlan doctor does not show the tamper:\n%q", drift(t, e.a))
			}
			e.detected("mode_changed", 1, true, func() { e.in(c1, "ip", "link", "set", "eth0", "type", "macvlan", "mode", "bridge", "flag", "nodst") })
			repaired()
		})
	}
}

// localFrame is a frame of etherLocal from src to dst carrying payload.
func localFrame(dst, src net.HardwareAddr, payload string) []byte {
	f := append(append(append([]byte{}, dst...), src...), etherLocal>>8, etherLocal&0xff)
	return append(append(f, payload...), make([]byte, max(0, 46-len(payload)))...)
}

// wantMacvlan: `ip -d link show eth0` in namespace ns says each of want.
func wantMacvlan(t *testing.T, e *dpEnv, ns string, want ...string) {
	t.Helper()
	out := e.in(ns, "ip", "-d", "link", "show", "eth0")
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("eth0 in %s: no %q:\n%s", ns, w, out)
		}
	}
}

// TestForeignDstPassthru: a passthru link (its parent promiscuous) is
// handed every unicast on the wire. The wire still reaches its container
// (a ping from the wire is answered), and three frames from the wire for
// another host are dropped on the container's ingress (foreign_dst).
func TestForeignDstPassthru(t *testing.T) {
	e := newDPEnv(t, dpModes[0], "eth1")
	wire := "w-eth1"
	e.a.ok("network", "create", "--subnet=172.16.88.0/24", "-o", "parent=eth1", "-o", "macvlan_mode=passthru", "pt")
	e.runD(e.name("1"), "pt", "--ip=172.16.88.10")
	e.in(e.sb.WirePath, "ip", "addr", "add", "172.16.88.2/24", "dev", wire)
	if out, err := e.pingFrom(e.sb.WirePath, "172.16.88.10", false); err != nil {
		t.Fatalf("the wire's ping of the passthru container: %v\n%s", err, out)
	}
	labels := map[string]string{"network": "pt", "reason": "foreign_dst"}
	before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
	sendFrames(t, e.sb.WirePath, wire, localFrame(nstest.MAC(t, "02:00:5e:00:53:44"), nstest.MAC(t, "02:00:5e:00:53:01"), "mvlan-foreign-host"), 3)
	text := e.waitCounter("mvlan_policy_drops_total", labels, before+3, nil)
	if got := counter(text, "mvlan_policy_drops_total", labels); got != before+3 {
		t.Errorf("mvlan_policy_drops_total%v went from %d to %d; want +3", labels, before, got)
	}
}

// third is tamperEnv's third container: its name and endpoint.
func third(t *testing.T, e *dpEnv) (string, api.Endpoint) {
	t.Helper()
	c3 := e.name("3")
	ep3, ok := e.endpoint(c3)
	if !ok {
		t.Fatalf("%s not in ps", c3)
	}
	return c3, ep3
}
