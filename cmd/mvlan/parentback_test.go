package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestParentBackReattaches: the kernel deletes the containers' links with
// their parent (a NIC unplugged, the operator's VLAN link deleted); when
// the parent comes back, at a new index, the agent makes them again in
// their namespaces, with their addresses, without a restart: the two
// containers ping each other again. Also when the agent started while the
// parent was gone.
func TestParentBackReattaches(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.93.0/24", "-o", "parent=eth1", "net1")
	c1, c2 := e.runD(e.name("1"), "net1"), e.runD(e.name("2"), "net1")
	c2addr := c2.Addrs[0].Addr().String()
	out, err := e.pingFrom(c1.Netns, c2addr, false)
	e.wantPingOK("c1 -> c2 before the parent goes", out, exitCode(err))

	e.in(e.sb.Path, "ip", "link", "del", "eth1")
	if out, err := nstest.RunErr(c1.Netns, "ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("c1's eth0 outlived its parent (the test would prove nothing):\n%s", out)
	}
	e.sb.AddVeth(t, "eth1")
	// Both containers: the agent attaches them one after the other, and a
	// ping from c1 needs c1's link as much as c2's.
	back := waitFor(5*time.Second, func() bool {
		return hasEth0Addr(c1) && hasEth0Addr(c2) && strings.Contains(e.a.ok("network", "ls"), " ok")
	})
	if !back {
		out1, _ := nstest.RunErr(c1.Netns, "ip", "-o", "addr", "show")
		out2, _ := nstest.RunErr(c2.Netns, "ip", "-o", "addr", "show")
		t.Fatalf("eth1 came back, but c1's and c2's eth0 with their addresses did not within 5 s:\nc1:\n%s\nc2:\n%s\n%s\n%s", out1, out2, e.a.ok("network", "ls"), e.a.log)
	}
	out, err = e.pingFrom(c1.Netns, c2addr, false)
	e.wantPingOK("c1 -> c2 after the parent came back", out, exitCode(err))
	if d := drift(t, e.a); len(d) > 0 {
		t.Errorf("drift after the containers were attached again: %q\n%s", d, e.a.log)
	}
	// The links that went with the old parent leave nothing attached
	// behind: eth1's two programs, each container's two.
	if at := (&statsEnv{t: t, sb: e.sb, a: e.a}).stats().Attachments; len(at) != 6 {
		t.Errorf("%d attachments after the parent came back; want 6 (eth1's and the two containers' 2 each): %+v", len(at), at)
	}

	// The same with the agent started while the parent is gone: its start
	// cannot make the links, the parent's return does.
	e.a.stop()
	e.in(e.sb.Path, "ip", "link", "del", "eth1")
	e.a.start()
	if ls := e.a.ok("network", "ls"); strings.Contains(ls, " ok") {
		t.Fatalf("net1 ok with eth1 gone:\n%s", ls)
	}
	e.sb.AddVeth(t, "eth1")
	back = waitFor(5*time.Second, func() bool { return hasEth0Addr(c1) && hasEth0Addr(c2) })
	if !back {
		t.Fatalf("eth1 came back after a start without it, but c1's and c2's eth0 did not within 5 s\n%s", e.a.log)
	}
	out, err = e.pingFrom(c1.Netns, c2addr, false)
	e.wantPingOK("c1 -> c2 after a start without the parent", out, exitCode(err))
}

// TestMacvlanParentRelowered: a network's parent mv0, a macvlan of eth1,
// is made again as a macvlan of eth2: the parent programs follow it to
// eth2, where its containers' frames will pass, and leave eth1, which
// has no network now (left, they kept counting its VLANs and passing
// its frames without a row).
func TestMacvlanParentRelowered(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	sb.AddVeth(t, "eth2")
	a := newAgent(t, sb)
	a.flags = []string{"--attach-mode", "tc"}
	a.start()
	sb.Run(t, sb.Path, "ip", "link", "add", "mv0", "link", "eth1", "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", "mv0", "up")
	a.ok("network", "create", "--subnet=172.16.96.0/24", "-o", "parent=mv0", "mvnet")
	filters := func(dev string) string {
		return sb.Run(t, sb.Path, "tc", "filter", "show", "dev", dev, "ingress") + sb.Run(t, sb.Path, "tc", "filter", "show", "dev", dev, "egress")
	}
	if f := filters("eth1"); !strings.Contains(f, "bpf") {
		t.Fatalf("no parent programs on eth1, mv0's lower link (the test would prove nothing):\n%s", f)
	}
	sb.Run(t, sb.Path, "ip", "link", "del", "mv0")
	sb.Run(t, sb.Path, "ip", "link", "add", "mv0", "link", "eth2", "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", "mv0", "up")
	moved := waitFor(5*time.Second, func() bool {
		return strings.Contains(filters("eth2"), "bpf") && !strings.Contains(filters("eth1"), "bpf")
	})
	if !moved {
		t.Fatalf("mv0 made again on eth2: after 5 s eth1's filters %q, eth2's %q; want the programs on eth2 only\n%s", filters("eth1"), filters("eth2"), a.log)
	}
}

// hasEth0Addr: the endpoint's eth0 is in its namespace with its first
// address.
func hasEth0Addr(ep api.Endpoint) bool {
	out, err := nstest.RunErr(ep.Netns, "ip", "-o", "addr", "show", "dev", "eth0")
	return err == nil && len(ep.Addrs) > 0 && strings.Contains(out, ep.Addrs[0].String())
}
