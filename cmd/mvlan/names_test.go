package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestEndpointNames: run --name and connect --name take the same names
// (no path, no newline: a name is a ps row and /run/netns/NAME), and a bad
// one changes nothing.
func TestEndpointNames(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	ns := nstest.NewNetns(t, e.sb.Name+"-n")
	for _, name := range []string{"../../etc/x", "a\nb", "a b", ".hidden", strings.Repeat("n", 65)} {
		for _, args := range [][]string{
			{"run", "-d", "--name", name, "--net", "pub_net"},
			{"connect", "--name", name, "pub_net", ns},
		} {
			_, errs, code := e.a.mv(args...)
			if code != 1 || !strings.Contains(errs, "container name") {
				t.Errorf("%s %q: exit %d, stderr %q; want 1 and an error about the container name", args[0], name, code, errs)
			}
		}
	}
	if eps := e.ps(); len(eps) != 0 {
		t.Fatalf("refused names left endpoints: %+v", eps)
	}
	// Nothing was held: the next one gets the first address.
	if ep := e.runD(e.name("ok"), "pub_net"); addrOf(ep, false) != "172.16.86.2/24" {
		t.Fatalf("first container got %s, want 172.16.86.2/24", addrOf(ep, false))
	}
}

// TestRmOneThing: rm NAME never removes two containers. The same name on
// two networks for two namespaces is refused, listing NET/NAME of each;
// NET/NAME and the ID pick one. A container on two networks (one
// namespace) is one thing: rm NAME removes it from both.
func TestRmOneThing(t *testing.T) {
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "neta")
	e.a.ok("network", "create", "--subnet=172.16.87.0/24", "-o", "parent=eth1", "netb")
	ns1 := nstest.NewNetns(t, e.sb.Name+"-1")
	ns2 := nstest.NewNetns(t, e.sb.Name+"-2")
	e.a.ok("connect", "--name", "dup", "neta", ns1)
	e.a.ok("connect", "--name", "dup", "netb", ns2)
	_, errs, code := e.a.mv("rm", "-f", "dup")
	if code != 1 || !strings.Contains(errs, "neta/dup") || !strings.Contains(errs, "netb/dup") || !strings.Contains(errs, "NET/NAME") {
		t.Fatalf("rm dup on two namespaces: exit %d, stderr %q; want 1 listing neta/dup and netb/dup and how to pick", code, errs)
	}
	if eps := e.ps(); len(eps) != 2 {
		t.Fatalf("refused rm changed the endpoints: %+v", eps)
	}
	e.a.ok("rm", "-f", "neta/dup")
	eps := e.ps()
	if len(eps) != 1 || eps[0].Network != "netb" {
		t.Fatalf("rm neta/dup left %+v; want only netb's dup", eps)
	}
	e.a.ok("rm", "-f", "dup") // one left: the name is enough
	if eps := e.ps(); len(eps) != 0 {
		t.Fatalf("rm dup left %+v", eps)
	}

	c := e.name("c")
	e.runD(c, "neta")
	e.a.ok("connect", "--name", c, "--ifname", "eth1", "netb", "/run/netns/"+c)
	if eps := e.ps(); len(eps) != 2 {
		t.Fatalf("container on two networks: ps %+v", eps)
	}
	// A process of the container holds its namespace (here the test,
	// by a descriptor): rm takes both links out of it, the one on the
	// network connected to it too.
	held, err := os.Open("/run/netns/" + c)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	e.a.ok("rm", "-f", c)
	if eps := e.ps(); len(eps) != 0 {
		t.Fatalf("rm of a container on two networks left %+v", eps)
	}
	inHeld := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), held.Fd())
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		out := e.sb.Run(t, inHeld, "ip", "-o", "link", "show", "type", "macvlan")
		if out == "" {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("5 s after rm -f %s, its namespace (held by a process) still has links:\n%s", c, out)
		}
	}
}

// TestRmForceMissing: against a real agent, rm and network rm of a name
// that is not there exit 1; with -f they go on and exit 0: rm -f names
// the missing one on stderr (docker rm -f), network rm -f says nothing
// (docker network rm -f). The others given are removed either way.
func TestRmForceMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	c := e.name("1")
	e.runD(c, "pub_net")
	missing := e.name("missing")
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string // errs: part of stderr; "" wants it empty
	}{
		{[]string{"rm", missing}, 1, "", missing},
		{[]string{"rm", "-f", missing, c}, 0, c + "\n", missing},
		{[]string{"network", "rm", missing}, 1, "", missing},
		{[]string{"network", "rm", "-f", missing, "pub_net"}, 0, "pub_net\n", ""},
	} {
		out, errs, code := e.a.mv(tc.args...)
		if code != tc.code || out != tc.out || (tc.errs == "") != (errs == "") || !strings.Contains(errs, tc.errs) {
			t.Errorf("mvlan %q: exit %d, out %q, stderr %q; want exit %d, out %q, stderr naming %q",
				tc.args, code, out, errs, tc.code, tc.out, tc.errs)
		}
	}
	if eps, nets := e.ps(), e.a.ok("network", "ls", "-q"); len(eps) != 0 || nets != "" {
		t.Errorf("after rm -f and network rm -f: ps %+v, network ls %q; want both empty", eps, nets)
	}
}
