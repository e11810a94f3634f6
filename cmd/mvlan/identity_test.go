package main

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestStableMAC: without --mac, a container's MAC is derived from the
// network and its name: rm + run again with the same name gives the same
// MAC (on its eth0 too) and the wire sees a gratuitous ARP from it after
// the re-attach; another name, or the same name on another network, gets
// another MAC; --mac still wins.
func TestStableMAC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.a.ok("network", "create", "--subnet=172.16.87.0/24", "-o", "parent=eth1", "other_net")
	c1, c2 := e.name("1"), e.name("2")
	first := e.runD(c1, "pub_net", "--ip=172.16.86.10").MAC
	mac, err := net.ParseMAC(first)
	if err != nil || mac[0]&3 != 2 {
		t.Fatalf("MAC %q of %s is not locally administered unicast (%v)", first, c1, err)
	}
	e.a.ok("rm", "-f", c1)
	capture := nstest.NewCapture(t, e.sb.WirePath, "wire0")
	again := e.runD(c1, "pub_net", "--ip=172.16.86.10").MAC
	if again != first {
		t.Errorf("re-created %s has MAC %s, first had %s", c1, again, first)
	}
	mustContain(t, "eth0 of re-created "+c1, e.in(c1, "ip", "-o", "link", "show", "dev", "eth0"), first)
	if _, err := capture.Wait(5*time.Second, func(f []byte) bool { return isGARP(f, mac, "172.16.86.10") }); err != nil {
		t.Errorf("no gratuitous ARP for 172.16.86.10 from %s on the wire after the re-attach: %v", mac, err)
	}
	macs := map[string]string{"pub_net " + c1: first}
	for _, o := range []struct{ name, net string }{{c2, "pub_net"}, {e.name("3"), "other_net"}} {
		if o.net == "other_net" {
			o.name = c1 // the same name on another network
			e.a.ok("rm", "-f", c1)
		}
		got := e.runD(o.name, o.net).MAC
		for k, m := range macs {
			if m == got {
				t.Errorf("%s %s got MAC %s, as %s did", o.net, o.name, got, k)
			}
		}
		macs[o.net+" "+o.name] = got
	}
	if got := e.runD(e.name("4"), "pub_net", "--mac=02:42:ac:10:56:0a").MAC; got != "02:42:ac:10:56:0a" {
		t.Errorf("--mac 02:42:ac:10:56:0a gave %s", got)
	}
	// A MAC another container of the network holds is refused, naming it.
	held := macs["pub_net "+c2]
	_, stderr, code := e.a.mv("run", "-d", "--name", e.name("5"), "--net", "pub_net", "--mac="+held)
	if code != 1 || !strings.Contains(stderr, held) || !strings.Contains(stderr, "already used") {
		t.Errorf("run --mac=%s (held by %s): exit %d, %q; want exit 1 naming the MAC as already used", held, c2, code, stderr)
	}
}

// isGARP reports whether frame is a gratuitous ARP (sender and target
// address both addr) from mac.
func isGARP(f []byte, mac net.HardwareAddr, addr string) bool {
	ip := net.ParseIP(addr).To4()
	if len(f) < 42 || f[12] != 0x08 || f[13] != 0x06 {
		return false
	}
	arp := f[14:]
	return bytes.Equal(arp[8:14], mac) && bytes.Equal(arp[14:18], ip) && bytes.Equal(arp[24:28], ip) &&
		!strings.HasPrefix(addr, "0.")
}

// waitNetnsGone waits (at most 5 s) until /run/netns/NAME is gone.
func waitNetnsGone(t *testing.T, name string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/run/netns/" + name); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/run/netns/%s still there 5 s after rm", name)
		}
	}
}

// waitLog waits (at most 5 s) until the agent's log has line n times.
func waitLog(t *testing.T, a *agentProc, line string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(a.log.String(), line) < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("agent log has %q fewer than %d times:\n%s", line, n, a.log)
		}
	}
}

// TestRmThenRunElsewhere: rm answers before its removal finishes, with the
// name free, so a run of the same name on another network may come while
// the old removal is still going; that removal must not take the new
// container's namespace name away with its own (it deleted the namespace
// by name). Six rounds, alternating networks; ~3 s.
func TestRmThenRunElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.a.ok("network", "create", "--subnet=172.16.87.0/24", "-o", "parent=eth1", "other_net")
	c := e.name("1")
	nets := []string{"pub_net", "other_net"}
	e.runD(c, nets[0])
	for i := 1; i <= 6; i++ {
		e.a.ok("rm", "-f", c)
		ep := e.runD(c, nets[i%2])
		waitLog(t, e.a, `msg="endpoint removed" name=`+c, i)
		if _, err := os.Stat(ep.Netns); err != nil {
			t.Fatalf("round %d: the old removal took the new %s's namespace: %v", i, c, err)
		}
		if got, ok := e.endpoint(c); !ok || got.ID != ep.ID {
			t.Fatalf("round %d: ps has %s as %+v (%v), want the new endpoint %s", i, c, got, ok, ep.ID)
		}
		mustContain(t, "eth0 of the new "+c, e.in(c, "ip", "-o", "addr", "show", "dev", "eth0"), addrOf(ep, false))
	}
}
