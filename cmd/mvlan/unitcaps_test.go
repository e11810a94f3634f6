package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestUnitCapabilities: an agent whose capability bounding set is
// mvlan.service's CapabilityBoundingSet (read from the unit, applied with
// setpriv) does the whole job: a network on a parent, two containers that
// ping each other, counters, a connected process of full capabilities,
// removal. A capability missing from the unit fails here, not on an
// operator's host (without CAP_SYS_ADMIN the agent does not start;
// without CAP_SYS_PTRACE connect fails: both tried). About 10 s.
func TestUnitCapabilities(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	caps := unitCapabilities(t, "../../packaging/mvlan.service")
	sb := nstest.NewSandbox(t)
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	e.a.wrap = []string{"setpriv", "--bounding-set=-all," + caps, "--inh-caps=-all", "--"}
	e.a.start()
	t.Cleanup(e.cleanup)
	// setpriv, nsenter and mvlan exec: the pid is the agent's.
	if mine, its := capBnd(t, "self"), capBnd(t, strconv.Itoa(e.a.cmd.Process.Pid)); mine == its {
		t.Fatalf("the agent runs with the test's own bounding set %s", its)
	}
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	e.runD(e.name("1"), "pub_net", "--ip=172.16.86.10")
	out, code := e.pingRun("pub_net", "172.16.86.10", false)
	e.wantPingOK("ping under the unit's capabilities", out, code)
	cl := api.NewClient(e.a.socket)
	defer cl.Close()
	s, err := cl.Stats(t.Context())
	if err != nil || len(s.Networks) != 1 || s.Networks[0].Rx.Packets < 4 {
		t.Errorf("stats under the unit's capabilities: %v %+v", err, s.Networks)
	}
	// A process of full capabilities: its /proc/PID/ns/net takes CAP_SYS_PTRACE.
	_, nsp := netnsProcess(t)
	e.a.ok("connect", "--ip=172.16.86.40", "pub_net", nsp)
	mustContain(t, "eth0 of the process", e.in(nsp, "ip", "-o", "addr", "show", "dev", "eth0"), "172.16.86.40/24")
	e.a.ok("disconnect", "pub_net", nsp)
	e.a.ok("rm", "-f", e.name("1"))
	e.a.ok("network", "rm", "pub_net")
}

// capBnd is the CapBnd line of /proc/PID/status.
func capBnd(t *testing.T, pid string) string {
	t.Helper()
	st, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%s/status has no CapBnd", pid)
	return ""
}

// unitCapabilities is the unit's CapabilityBoundingSet in setpriv's
// form: +net_admin,+sys_admin,...
func unitCapabilities(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapabilityBoundingSet="); ok {
			var out []string
			for _, c := range strings.Fields(v) {
				out = append(out, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
			}
			return strings.Join(out, ",")
		}
	}
	t.Fatalf("%s has no CapabilityBoundingSet", path)
	return ""
}

// TestUnitCapabilitiesDHCP: under the unit's bounding set, a DHCP
// network's container gets its lease and rm gives it back: DHCPRELEASE is
// sent from a UDP socket bound to the leased address and port 68, which
// takes CAP_NET_BIND_SERVICE (without it in the unit the release was not
// sent and the server kept the lease: tried). About 3 s.
func TestUnitCapabilitiesDHCP(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	caps := unitCapabilities(t, "../../packaging/mvlan.service")
	sb := nstest.NewSandbox(t)
	srv := startDnsmasq(t, sb, sb.AddVeth(t, "eth1"))
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	srv.agent = e.a
	e.a.wrap = []string{"setpriv", "--bounding-set=-all," + caps, "--inh-caps=-all", "--"}
	e.a.start()
	t.Cleanup(e.cleanup)
	e.a.ok("network", "create", "--ipam-driver", "dhcp", "--subnet", "192.168.60.0/24", "-o", "parent=eth0", "lan")
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	srv.waitLease(ep.MAC, time.Second, "lease of "+c1, func(_ lease, ok bool) bool { return ok })
	e.a.ok("rm", "-f", c1)
	srv.waitLease(ep.MAC, 5*time.Second, "DHCPRELEASE on rm under the unit's capabilities", func(_ lease, ok bool) bool { return !ok })
}
