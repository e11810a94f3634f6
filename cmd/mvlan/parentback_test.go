package main

import (
	"strings"
	"testing"
	"time"

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
	back := waitFor(5*time.Second, func() bool {
		out, err := nstest.RunErr(c2.Netns, "ip", "-o", "addr", "show", "dev", "eth0")
		return err == nil && strings.Contains(out, c2.Addrs[0].String()) && strings.Contains(e.a.ok("network", "ls"), " ok")
	})
	if !back {
		out, _ := nstest.RunErr(c2.Netns, "ip", "-o", "addr", "show")
		t.Fatalf("eth1 came back, but c2's eth0 with %s did not within 5 s:\n%s\n%s\n%s", c2.Addrs[0], out, e.a.ok("network", "ls"), e.a.log)
	}
	out, err = e.pingFrom(c1.Netns, c2addr, false)
	e.wantPingOK("c1 -> c2 after the parent came back", out, exitCode(err))
	if d := drift(t, e.a); len(d) > 0 {
		t.Errorf("drift after the containers were attached again: %q\n%s", d, e.a.log)
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
	back = waitFor(5*time.Second, func() bool {
		out, err := nstest.RunErr(c2.Netns, "ip", "-o", "addr", "show", "dev", "eth0")
		return err == nil && strings.Contains(out, c2.Addrs[0].String())
	})
	if !back {
		t.Fatalf("eth1 came back after a start without it, but c2's eth0 did not within 5 s\n%s", e.a.log)
	}
	out, err = e.pingFrom(c1.Netns, c2addr, false)
	e.wantPingOK("c1 -> c2 after a start without the parent", out, exitCode(err))
}
