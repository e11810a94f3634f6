package main

import (
	"encoding/binary"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestTamperHiddenNested: container 1 makes a nested macvlan, deletes its
// eth0 and puts a veth of its own at eth0's ifindex (in one `ip -batch`,
// between two checks), as if to pass the veth's peer off as the parent the
// nested link must be on. The tamper check still finds the nested link on
// the network's parent and deletes it within 1 s, and puts no program on
// the veth: its hooks count as detached, not repaired.
func TestTamperHiddenNested(t *testing.T) {
	e, c1, _, _ := tamperEnv(t, dpModes[0], true)
	idx := strings.Fields(e.in(c1, "ip", "-o", "link", "show", "dev", "eth0"))[0]
	idx = strings.TrimSuffix(idx, ":")
	detached := map[string]string{"reason": "detached"}
	reattached := counter(e.view("", "").scrape(), "mvlan_datapath_reattach_total", detached)
	e.detected("nested_link", 1, true, func() {
		e.in(c1, "sh", "-c", `printf '%s\n' \
			'link add link eth0 name sniff type macvlan mode bridge' \
			'link del eth0' \
			'link add eth0 index `+idx+` type veth peer name vp index 77' | ip -batch -`)
	})
	if out, err := nstest.RunErr(c1, "ip", "link", "show", "sniff"); err == nil {
		t.Errorf("the nested link is still there:\n%s", out)
	}
	text := e.view("", "").scrape()
	if got := counter(text, "mvlan_datapath_tamper_total", detached); got == 0 {
		t.Errorf("mvlan_datapath_tamper_total%v = 0; want the veth at eth0's index counted (its hooks have no program of the endpoint)", detached)
	}
	if got := counter(text, "mvlan_datapath_reattach_total", detached); got != reattached {
		t.Errorf("mvlan_datapath_reattach_total%v moved by %d; want 0: the veth is not the endpoint's link", detached, got-reattached)
	}
	if out := e.in(c1, "tc", "filter", "show", "dev", "eth0", "ingress"); strings.Contains(out, "bpf") {
		t.Errorf("a program on the container's veth:\n%s", out)
	}
}

// TestNestedLinkClaimsToWire: a link container 1 nests on the parent,
// with container 3's address (.12) on it, answers a host on the wire that
// asks for .12. Its kernel sends that ARP reply without a socket, past
// every program of container 1's, so only the parent can refuse it: it is
// dropped there (arp_spoof, exactly once), and the wire hears container
// 3's answer alone.
func TestNestedLinkClaimsToWire(t *testing.T) {
	stub := dpMode{"tc-stub", "tc", "tc", []string{"--attach-mode", "tc", "--endpoint-programs", "stub"}}
	for _, m := range []dpMode{dpModes[0], stub} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e, c1, _, g := tamperEnv(t, m, false)
			c3MAC := linkMAC(t, e.name("3"), "eth0")
			evil := nestedLink(t, e, c1, "172.16.86.12")
			labels := map[string]string{"network": g.net, "reason": "arp_spoof"}
			before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
			wire := nstest.NewCapture(t, e.sb.WirePath, "wire0")
			asker := nstest.MAC(t, "02:00:5e:00:53:aa")
			sendFrames(t, e.sb.WirePath, "wire0", arpRequest(asker, addr("172.16.86.250"), addr("172.16.86.12")), 1)
			text := e.waitCounter("mvlan_policy_drops_total", labels, before+1, nil)
			if got := counter(text, "mvlan_policy_drops_total", labels); got != before+1 {
				t.Errorf("mvlan_policy_drops_total%v moved by %d; want 1, the nested link's reply", labels, got-before)
			}
			if replies, want := arpReplies(wire), map[string]int{c3MAC: 1}; !maps.Equal(replies, want) {
				t.Errorf("ARP replies on the wire by source MAC: %v; want %v, container 3's alone (the nested link is %s)", replies, want, evil)
			}
		})
	}
}

// TestNestedLinkClaimsGateway: a link container 1 nests on the parent,
// with the network's gateway address (.1) on it, answers a host on the
// wire that asks for the gateway. The parent drops that reply (arp_spoof,
// exactly once): no link on the parent but the parent itself may bind
// the gateway to its MAC on the wire. When the host itself is the gateway
// (.1 on the parent), its reply passes.
func TestNestedLinkClaimsGateway(t *testing.T) {
	e, c1, _, g := tamperEnv(t, dpModes[0], false)
	evil := nestedLink(t, e, c1, "172.16.86.1")
	labels := map[string]string{"network": g.net, "reason": "arp_spoof"}
	before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
	asker := nstest.MAC(t, "02:00:5e:00:53:aa")
	ask := arpRequest(asker, addr("172.16.86.250"), addr("172.16.86.1"))
	wire := nstest.NewCapture(t, e.sb.WirePath, "wire0")
	sendFrames(t, e.sb.WirePath, "wire0", ask, 1)
	text := e.waitCounter("mvlan_policy_drops_total", labels, before+1, nil)
	if got := counter(text, "mvlan_policy_drops_total", labels); got != before+1 {
		t.Errorf("mvlan_policy_drops_total%v moved by %d; want 1, the nested link's reply", labels, got-before)
	}
	if replies := arpReplies(wire); len(replies) != 0 {
		t.Errorf("ARP replies on the wire by source MAC: %v; want none (the nested link is %s)", replies, evil)
	}
	e.in(c1, "ip", "link", "del", "evil")
	e.sb.Run(t, e.sb.Path, "ip", "addr", "add", "172.16.86.1/24", "dev", "eth0")
	wire = nstest.NewCapture(t, e.sb.WirePath, "wire0")
	sendFrames(t, e.sb.WirePath, "wire0", ask, 1)
	parent := linkMAC(t, e.sb.Path, "eth0")
	if replies, want := arpReplies(wire), map[string]int{parent: 1}; !maps.Equal(replies, want) {
		t.Errorf("with the gateway on the parent, ARP replies on the wire: %v; want %v, the parent's", replies, want)
	}
	if got := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels); got != before+1 {
		t.Errorf("mvlan_policy_drops_total%v moved by %d after the parent's reply; want it to pass", labels, got-before-1)
	}
}

// TestNestedLinkClaimsShim: on a network with a host shim (its gateway
// pinned, so the host's links on the parent are known), a link container
// 1 nests on the parent with the shim's address answers a host on the
// wire that asks for it. The parent drops that reply (arp_spoof, exactly
// once): the wire hears the host's answers only.
func TestNestedLinkClaimsShim(t *testing.T) {
	e, c1, _, g := tamperEnv(t, dpModes[0], false)
	e.a.ok("network", "update", "-o", "host_shim=172.16.86.2", "tm")
	evil := nestedLink(t, e, c1, "172.16.86.2")
	labels := map[string]string{"network": g.net, "reason": "arp_spoof"}
	before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
	asker := nstest.MAC(t, "02:00:5e:00:53:aa")
	wire := nstest.NewCapture(t, e.sb.WirePath, "wire0")
	sendFrames(t, e.sb.WirePath, "wire0", arpRequest(asker, addr("172.16.86.250"), addr("172.16.86.2")), 1)
	text := e.waitCounter("mvlan_policy_drops_total", labels, before+1, nil)
	if got := counter(text, "mvlan_policy_drops_total", labels); got != before+1 {
		t.Errorf("mvlan_policy_drops_total%v moved by %d; want 1, the nested link's reply", labels, got-before)
	}
	replies := arpReplies(wire)
	if replies[evil.String()] != 0 || len(replies) == 0 {
		t.Errorf("ARP replies on the wire for the shim's address by source MAC: %v; want the host's, none from the nested link %s", replies, evil)
	}
}

// TestHostLinkClaimsGateway: a link the host makes on the parent after
// the network (a VM's macvtap, keepalived's VRRP macvlan) may be the LAN's
// router: once the agent has seen it, its replies for the gateway (.1)
// reach the wire and nothing is dropped. (Before it has, the first asks
// may be dropped.) Once it is deleted, a link container 1 nests on the
// parent with its MAC, free now, is refused as any other.
func TestHostLinkClaimsGateway(t *testing.T) {
	e, c1, _, g := tamperEnv(t, dpModes[0], false)
	vrrp := "00:00:5e:00:01:07"
	e.sb.Run(t, e.sb.Path, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_ignore=1")
	e.sb.Run(t, e.sb.Path, "ip", "link", "add", "link", "eth0", "name", "vrrp", "address", vrrp, "type", "macvlan", "mode", "bridge")
	e.sb.Run(t, e.sb.Path, "ip", "addr", "add", "172.16.86.1/24", "dev", "vrrp")
	e.sb.Run(t, e.sb.Path, "ip", "link", "set", "vrrp", "up")
	ask := arpRequest(nstest.MAC(t, "02:00:5e:00:53:aa"), addr("172.16.86.250"), addr("172.16.86.1"))
	var replies map[string]int
	for deadline := time.Now().Add(10 * time.Second); replies[vrrp] == 0 && time.Now().Before(deadline); {
		wire := nstest.NewCapture(t, e.sb.WirePath, "wire0")
		sendFrames(t, e.sb.WirePath, "wire0", ask, 1)
		replies = arpReplies(wire)
	}
	if replies[vrrp] == 0 {
		t.Fatalf("ARP replies on the wire for the gateway: %v; want the host link's (%s) within 10 s", replies, vrrp)
	}
	labels := map[string]string{"network": g.net, "reason": "arp_spoof"}
	before := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels)
	wire := nstest.NewCapture(t, e.sb.WirePath, "wire0")
	sendFrames(t, e.sb.WirePath, "wire0", ask, 3)
	if replies, want := arpReplies(wire), map[string]int{vrrp: 3}; !maps.Equal(replies, want) {
		t.Errorf("ARP replies on the wire for the gateway: %v; want %v, the host link's", replies, want)
	}
	if got := counter(e.view("", "").scrape(), "mvlan_policy_drops_total", labels); got != before {
		t.Errorf("mvlan_policy_drops_total%v moved by %d; want the host link's replies to pass", labels, got-before)
	}
	e.sb.Run(t, e.sb.Path, "ip", "link", "del", "vrrp")
	nestedLinkWith(t, e, c1, "172.16.86.1", nstest.MAC(t, vrrp))
	wire = nstest.NewCapture(t, e.sb.WirePath, "wire0")
	sendFrames(t, e.sb.WirePath, "wire0", ask, 1)
	text := e.waitCounter("mvlan_policy_drops_total", labels, before+1, nil)
	if got := counter(text, "mvlan_policy_drops_total", labels); got != before+1 {
		t.Errorf("mvlan_policy_drops_total%v moved by %d; want 1, the nested link's reply with the deleted host link's MAC", labels, got-before)
	}
	if replies := arpReplies(wire); len(replies) != 0 {
		t.Errorf("ARP replies on the wire with the host link deleted: %v; want none", replies)
	}
}

// nestedLink makes, in container c, a macvlan "evil" of its eth0 (on the
// host's parent, past the container's programs) with addr on it, up; eth0
// does not answer ARP for it. It returns evil's MAC.
func nestedLink(t *testing.T, e *dpEnv, c, addr string) net.HardwareAddr {
	return nestedLinkWith(t, e, c, addr, nstest.MAC(t, "02:00:5e:00:53:66"))
}

// nestedLinkWith is nestedLink with the MAC evil.
func nestedLinkWith(t *testing.T, e *dpEnv, c, addr string, evil net.HardwareAddr) net.HardwareAddr {
	e.in(c, "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1")
	e.in(c, "ip", "link", "add", "link", "eth0", "name", "evil", "address", evil.String(), "type", "macvlan", "mode", "bridge")
	e.in(c, "sysctl", "-q", "-w", "net.ipv6.conf.evil.disable_ipv6=1")
	e.in(c, "ip", "addr", "add", addr+"/32", "dev", "evil")
	e.in(c, "ip", "link", "set", "evil", "up")
	return evil
}

// arpReplies counts the ARP replies c hears within a second, by source MAC.
func arpReplies(c *nstest.Capture) map[string]int {
	replies := map[string]int{}
	_, _ = c.Wait(time.Second, func(f []byte) bool {
		if len(f) >= 22 && binary.BigEndian.Uint16(f[12:]) == unix.ETH_P_ARP && binary.BigEndian.Uint16(f[20:]) == 2 {
			replies[net.HardwareAddr(f[6:12]).String()]++
		}
		return false
	})
	return replies
}
