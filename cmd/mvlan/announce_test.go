package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestAnnounceWhereNeeded: a container whose address the network picked
// and no endpoint of the network ever held is announced on the wire only:
// its neighbour on the same parent (arp_accept=1, so it would take any
// gratuitous ARP) makes no entry for it. One that takes an address another
// container gave back is announced to its neighbours too: the neighbour's
// entry, made by pinging the old holder, moves to the new MAC, also after
// an agent restart (the store keeps what was given back). About 5 s.
func TestAnnounceWhereNeeded(t *testing.T) {
	t.Parallel()
	e, nb := newAnnounceEnv(t)
	const addr = "172.16.86.3" // the lowest free address after nb's

	fresh := e.announced(e.name("1"), addr)
	time.Sleep(300 * time.Millisecond) // a broadcast reaches the neighbour before the wire does
	if n := e.in(nb, "ip", "neigh", "show", addr); strings.Contains(n, fresh) {
		t.Errorf("%s took the announcement of an address never held before (%s at %s): %s", nb, addr, fresh, n)
	}
	out, err := e.pingFrom(nb, addr, false)
	e.wantPingOK("ping the first holder", out, exitOf(err))
	e.a.ok("rm", "-f", e.name("1"))
	e.reused(nb, e.name("2"), addr)
	e.a.ok("rm", "-f", e.name("2"))
	e.a.stop()
	e.a.start()
	e.reused(nb, e.name("3"), addr)
}

// newAnnounceEnv is an agent with network "an" (172.16.86.0/24 on eth0)
// and a neighbour container at 172.16.86.2, returned by name, that takes
// every gratuitous ARP (arp_accept=1) and lets one replace its entry at
// once (locktime=0).
func newAnnounceEnv(t *testing.T) (*env, string) {
	t.Helper()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "an")
	nb := e.name("nb")
	e.runD(nb, "an", "--ip=172.16.86.2")
	e.in(nb, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_accept=1", "net.ipv4.neigh.eth0.locktime=0")
	return e, nb
}

// announced runs name on network "an" without --ip, checks that it got
// addr and that the wire saw its gratuitous ARP, and returns its MAC.
func (e *env) announced(name, addr string) string {
	e.t.Helper()
	capture := nstest.NewCapture(e.t, e.sb.WirePath, "wire0")
	ep := e.runD(name, "an")
	if len(ep.Addrs) == 0 || ep.Addrs[0].Addr().String() != addr {
		e.t.Fatalf("%s got %v; want %s (the lowest free address)", name, ep.Addrs, addr)
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		e.t.Fatalf("MAC %q of %s: %v", ep.MAC, name, err)
	}
	if _, err := capture.Wait(5*time.Second, func(f []byte) bool { return isGARP(f, mac, addr) }); err != nil {
		e.t.Errorf("no gratuitous ARP for %s from %s on the wire: %v", addr, mac, err)
	}
	return ep.MAC
}

// reused runs name, which takes addr back, and checks that the
// neighbour nb's entry for addr moves to name's MAC.
func (e *env) reused(nb, name, addr string) {
	e.t.Helper()
	mac := e.announced(name, addr)
	if !waitFor(2*time.Second, func() bool { return strings.Contains(e.in(nb, "ip", "neigh", "show", addr), mac) }) {
		e.t.Errorf("%s's entry for %s is not %s's MAC %s after its announcement: %s", nb, addr, name, mac, e.in(nb, "ip", "neigh", "show", addr))
	}
}

// TestAnnounceShimAddress: an address the host shim gave back is in the
// neighbours' caches under the shim's MAC, so the container that takes
// it next is announced to them too: after the shim held it (in memory),
// after a restart with the shim gone (stored with the shim's removal),
// and after a restart with the shim still there (counted on start).
// About 6 s.
func TestAnnounceShimAddress(t *testing.T) {
	t.Parallel()
	e, nb := newAnnounceEnv(t)
	for i, step := range []struct {
		addr                  string // the shim's, the lowest free address
		restartOn, restartOff bool
	}{
		{"172.16.86.3", false, false},
		{"172.16.86.4", false, true},
		{"172.16.86.5", true, false},
	} {
		e.a.ok("network", "update", "-o", "host_shim=auto", "an")
		if got := e.a.inspectNet("an").HostShim; got == nil || len(got.Addrs) != 1 || got.Addrs[0].String() != step.addr {
			t.Fatalf("step %d: host shim %+v; want %s", i, got, step.addr)
		}
		out, err := e.pingFrom(nb, step.addr, false) // nb caches the shim's MAC
		e.wantPingOK("ping the host shim", out, exitOf(err))
		if step.restartOn {
			e.a.stop()
			e.a.start()
		}
		e.a.ok("network", "update", "-o", "host_shim=off", "an")
		if step.restartOff {
			e.a.stop()
			e.a.start()
		}
		e.reused(nb, e.name(fmt.Sprint(i)), step.addr)
	}
}

// TestAnnounceAfterRecover: a state restored from its snapshot
// (`agent --recover`) does not know the addresses given back after the
// snapshot, so every address is announced to the neighbours as before:
// c1 is made and removed after the last snapshot, and c2, which takes its
// address, moves the neighbour's entry. About 3 s.
func TestAnnounceAfterRecover(t *testing.T) {
	t.Parallel()
	e, nb := newAnnounceEnv(t)
	e.a.stop() // a clean stop: the snapshot holds the network and nb
	e.a.start()
	const addr = "172.16.86.3"
	e.announced(e.name("1"), addr)
	out, err := e.pingFrom(nb, addr, false)
	e.wantPingOK("ping the first holder", out, exitOf(err))
	e.a.ok("rm", "-f", e.name("1"))
	if !e.waitGone(e.name("1"), 5*time.Second) {
		t.Fatal("c1 still listed")
	}
	e.a.kill()
	truncate(t, filepath.Join(e.a.stateDir(), store.FileName), 0)
	e.a.flags = []string{"--recover"}
	e.a.start()
	e.a.flags = nil
	e.reused(nb, e.name("2"), addr)
}
