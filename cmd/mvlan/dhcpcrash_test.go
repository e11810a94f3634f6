package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// named returns the lease file's line whose hostname (option 12, the
// container's name) is host.
func (d *dnsmasq) named(host string) (string, bool) {
	for _, f := range d.Lines() {
		if len(f) >= 4 && f[3] == host {
			return strings.Join(f, " "), true
		}
	}
	return "", false
}

// TestDHCPCrashPoints kills the agent (SIGKILL) where a crash would
// leave a lease bound on the server for an endpoint the restart undoes:
// after the DHCPACK, before "ready" is stored (endpoint-create:after-lease),
// and after "removing" is stored, before the DHCPRELEASE
// (endpoint-rm:after-state); and before the lease is asked for
// (endpoint-create:after-link), where the restart must not adopt an
// endpoint without a lease. After each restart the container is gone,
// nothing is left behind, and dnsmasq's lease file has no lease for it.
func TestDHCPCrashPoints(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	peer := sb.AddVeth(t, "eth1")
	srv := startDnsmasq(t, sb, peer)
	a := newAgent(t, sb)
	srv.agent = a
	prefix := sb.Name + "-c"
	cleanupContainers(t, prefix)
	a.start()
	a.ok("network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0", "lan")
	for i, point := range []string{"endpoint-create:after-lease", "endpoint-create:after-link", "endpoint-rm:after-state"} {
		name := prefix + string(rune('1'+i))
		if strings.HasPrefix(point, "endpoint-rm") {
			a.ok("run", "-d", "--name", name, "--net", "lan")
		}
		a.stop()
		a.start("MVLAN_TEST_CRASHPOINT=" + point)
		if strings.HasPrefix(point, "endpoint-rm") {
			a.mv("rm", "-f", name)
		} else {
			a.mv("run", "-d", "--name", name, "--net", "lan")
		}
		a.waitExit()
		if _, held := srv.named(name); held == (point == "endpoint-create:after-link") {
			data, _ := os.ReadFile(srv.Leases)
			t.Fatalf("%s: the server holds a lease for %s: %v, want %v; lease file:\n%s", point, name, held, !held, data)
		}
		a.start()
		if line, held := srv.named(name); held {
			t.Errorf("%s: after the restart the server still holds %s's lease: %s\nagent log:\n%s", point, name, line, a.log)
		}
		assertConsistent(t, a, prefix)
		if strings.Contains(a.ok("ps"), name) {
			t.Errorf("%s: ps lists %s after the restart undid it", point, name)
		}
	}
	// The name is free, and its lease is taken again.
	e := &env{t: t, sb: sb, a: a}
	e.runD(prefix+"1", "lan")
	srv.waitLease(func() string { ep, _ := e.endpoint(prefix + "1"); return ep.MAC }(), 2*time.Second, "lease after the crashes", func(_ lease, ok bool) bool { return ok })
	a.ok("rm", "-f", prefix+"1")
}
