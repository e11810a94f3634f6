package main

import (
	"net"
	"net/netip"
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

// TestDHCPCrashAfterRelease: the agent is killed after rm's DHCPRELEASE,
// before the record is gone (endpoint-rm:after-release). The restart
// finishes the removal without putting the released address back on the
// link: the server may have given it to another host, which the link's
// gratuitous ARP (arp_notify) would take it from. The wire hears neither
// that ARP nor a second DHCPRELEASE.
func TestDHCPCrashAfterRelease(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.65.1/24", "dev", "wire0")
	nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-range=192.168.65.100,192.168.65.150,255.255.255.0,2m",
		"--dhcp-option=option:router,192.168.65.1")
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	a.start()
	t.Cleanup(e.cleanup)
	a.ok("network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0", "lan")
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	addr := netip.MustParsePrefix(addrOf(ep, false)).Addr().String()
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	a.start("MVLAN_TEST_CRASHPOINT=endpoint-rm:after-release")
	wire := nstest.NewCapture(t, sb.WirePath, "wire0")
	a.mv("rm", "-f", c1)
	a.waitExit()
	if _, err := wire.Wait(time.Second, isRelease); err != nil {
		t.Fatalf("no DHCPRELEASE before the crash: %v\n%s", err, a.log)
	}
	a.start()
	waitNetnsGone(t, c1)
	if strings.Contains(a.ok("ps"), c1) {
		t.Errorf("ps lists %s after the restart finished its removal", c1)
	}
	again := func(f []byte) bool { return isGARP(f, mac, addr) || isRelease(f) }
	if f, err := wire.Wait(2*time.Second, again); err == nil {
		t.Errorf("after the restart the wire heard %s's released address %s again: % x\n%s", c1, addr, f, a.log)
	}
}

// TestStopWaitsForSlowAttach: a stop (SIGTERM) while a DHCP attach waits
// for a server that does not answer (8 s) lets the attach finish: the
// client gets the attach's own answer, not a broken connection, the
// agent exits 0, and nothing of the container is left.
func TestStopWaitsForSlowAttach(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a, e := dhcpLAN(t, sb) // no DHCP server on the wire
	c1 := e.name("1")
	type result struct {
		stderr string
		code   int
	}
	done := make(chan result, 1)
	go func() {
		_, stderr, code := a.mv("run", "-d", "--name", c1, "--net", "lan")
		done <- result{stderr, code}
	}()
	time.Sleep(time.Second)
	a.stop() // fails the test on a non-zero exit
	r := <-done
	if r.code == 0 || !strings.Contains(r.stderr, "no DHCP server answered") {
		t.Errorf("run stopped under: exit %d, %q; want the attach's own error (no DHCP server answered)\n%s", r.code, r.stderr, a.log)
	}
	a.start()
	if eps := a.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after the stop and a start: %+v; want none", eps)
	}
}
