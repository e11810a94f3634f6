package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// wireMark is the packet mark bit parent_ingress sets on a frame from the
// wire for a local endpoint (bpf/include/mvlan.h: WIRE_MARK).
const wireMark = 0x00800000

// TestWireMarkRedirected: container 1 redirects frames from its own lo to
// its eth0's ingress (tc mirred) with the wire's mark on them (SO_MARK,
// which CAP_NET_ADMIN in its namespace allows): a frame from a MAC of no
// local endpoint, as a DHCP server's reply to the agent's client would
// be, that did not come from the wire is dropped (unknown_source, exactly
// 3) and never reaches container 1's stack; the same frame from the wire
// does. The mark alone made it "from the wire" before.
func TestWireMarkRedirected(t *testing.T) {
	for _, m := range dpModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e, c1, _, g := tamperEnv(t, m, false)
			e.in(c1, "tc", "qdisc", "add", "dev", "lo", "clsact")
			e.in(c1, "tc", "filter", "add", "dev", "lo", "egress", "u32", "match", "u32", "0", "0",
				"action", "mirred", "ingress", "redirect", "dev", "eth0")
			server := nstest.MAC(t, "02:00:5e:00:53:67")
			at1 := nstest.NewCaptureOf(t, c1, "eth0", etherLocal)
			labels := map[string]string{"network": g.net, "reason": "unknown_source"}
			before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
			for i, err := range sendMarked(t, c1, "lo", localFrame(g.own, server, "mvlan-redirected"), 3, false, wireMark) {
				if err != nil {
					t.Fatalf("send redirected frame %d: %v", i+1, err)
				}
			}
			text := e.waitCounter("mvlan_policy_drops_total", labels, before+3, nil)
			if got := counter(text, "mvlan_policy_drops_total", labels); got != before+3 {
				t.Errorf("mvlan_policy_drops_total%v went from %d to %d; want +3 (the redirected frames)", labels, before, got)
			}
			sendFrames(t, e.sb.WirePath, "wire0", localFrame(g.own, server, "mvlan-from-wire"), 1)
			leaked := false
			_, err := at1.Wait(3*time.Second, func(f []byte) bool {
				leaked = leaked || strings.Contains(string(f), "mvlan-redirected")
				return strings.Contains(string(f), "mvlan-from-wire")
			})
			if err != nil {
				t.Errorf("%s: the same frame from the wire never arrived: %v", c1, err)
			}
			if leaked {
				t.Errorf("%s's stack received a frame it redirected to itself with the wire's mark", c1)
			}
		})
	}
}
