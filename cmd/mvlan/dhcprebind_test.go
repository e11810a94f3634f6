package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/internal/nstest"
)

// rebindFlags serve 192.168.63.100-150 with 2 min leases (dnsmasq's
// least), T1 at 3 s and T2 at 6 s, as authoritative: a failover pair.
var rebindFlags = []string{"--dhcp-authoritative", "--dhcp-range=192.168.63.100,192.168.63.150,255.255.255.0,2m",
	"--dhcp-option=option:router,192.168.63.1", "--dhcp-option=option:T1,3", "--dhcp-option=option:T2,6"}

// TestDHCPRebind: the server of a container's lease stops and its
// failover partner (another address, a lease file of its own, dnsmasq
// with --dhcp-authoritative) serves the subnet. The renewals from T1 go
// to the lease's server and get no answer; at T2 the agent rebinds and
// takes the partner's DHCPACK: within 3 s of T2 the lease is the
// partner's, for the same address, which stayed on eth0 throughout, and
// the partner's lease file has it. About 10 s.
func TestDHCPRebind(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.63.1/24", "dev", "wire0")
	first := nstest.StartDnsmasq(t, sb.WirePath, "wire0", rebindFlags...)
	a, e := dhcpLAN(t, sb)
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	if ep.Lease == nil || ep.Lease.Server != netip.MustParseAddr("192.168.63.1") {
		t.Fatalf("%s's lease %+v, want one from 192.168.63.1", c1, ep.Lease)
	}
	addr := addrOf(ep, false)
	first.Stop()
	sb.Run(t, sb.WirePath, "ip", "addr", "del", "192.168.63.1/24", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.63.2/24", "dev", "wire0")
	partner := nstest.StartDnsmasq(t, sb.WirePath, "wire0", rebindFlags...)

	for deadline := ep.Lease.Rebind.Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got, _ := e.endpoint(c1)
		if got.Lease != nil && got.Lease.Server == netip.MustParseAddr("192.168.63.2") {
			if addrOf(got, false) != addr || got.Lease.State != "bound" {
				t.Errorf("rebound lease of %s: %s (%s), want %s bound", c1, addrOf(got, false), got.Lease.State, addr)
			}
			break
		}
		mustContain(t, "eth0 of "+c1+" before the rebinding", e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0"), addr)
		if time.Now().After(deadline) {
			t.Fatalf("%s not rebound to the partner 3 s after T2 (%s):\n%s\npartner:\n%s", c1, ep.Lease.Rebind.Format(time.RFC3339Nano), a.log, partner.Log())
		}
	}
	if err := partner.WaitLease(netip.MustParsePrefix(addr).Addr(), true, 2*time.Second); err != nil {
		t.Error(err)
	}
	mustContain(t, "eth0 of "+c1+" after the rebinding", e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0"), addr)
	if !strings.Contains(a.log.String(), "server=192.168.63.2") {
		t.Errorf("the agent did not log the renewal by the partner:\n%s", a.log)
	}
}

// TestDHCPRemoveDuringRenewal: a container removed while its lease's
// renewal waits for an answer gives the lease back for good. The server
// (dnsmasq, as authoritative as a failover pair, so it binds what a
// REQUEST asks for) is frozen from before T1 (6 s), so the renewal sent
// at T1 waits, to be retransmitted 2 s later (and 4 s after that); the
// rm comes 0.5 s after T1 and is held for 4 s after its DHCPRELEASE
// (MVLAN_TEST_HOLDPOINT), the link still up. Nothing the container sends
// after the DHCPRELEASE is a DHCPREQUEST, and once the server runs again
// and has read everything in order, its lease file has no lease of the
// address: a retransmission after the release would have bound it
// again. About 13 s.
func TestDHCPRemoveDuringRenewal(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.64.1/24", "dev", "wire0")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range=192.168.64.100,192.168.64.150,255.255.255.0,2m",
		"--dhcp-option=option:router,192.168.64.1", "--dhcp-option=option:T1,6", "--dhcp-option=option:T2,30")
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	a.start("MVLAN_TEST_HOLDPOINT=endpoint-rm:after-release", "MVLAN_TEST_HOLD=4s")
	t.Cleanup(e.cleanup)
	a.ok("network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0", "lan")
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	addr := netip.MustParsePrefix(addrOf(ep, false)).Addr()
	srv.Pause()
	wire := nstest.NewCapture(t, sb.WirePath, "wire0")
	if _, err := wire.Wait(time.Until(ep.Lease.Renew.Add(3*time.Second)), isDHCP(dhcpv4.MessageTypeRequest)); err != nil {
		t.Fatalf("no renewal (DHCPREQUEST) by T1 (%s) + 3 s: %v\n%s", ep.Lease.Renew.Format(time.RFC3339Nano), err, a.log)
	}
	time.Sleep(500 * time.Millisecond)
	done := make(chan int)
	go func() {
		_, _, code := a.mv("rm", "-f", c1)
		done <- code
	}()
	if _, err := wire.Wait(2*time.Second, isRelease); err != nil {
		t.Fatalf("no DHCPRELEASE after rm: %v\n%s", err, a.log)
	}
	if f, err := wire.Wait(3500*time.Millisecond, isDHCP(dhcpv4.MessageTypeRequest)); err == nil {
		t.Errorf("a DHCPREQUEST after the DHCPRELEASE (the renewal retransmitted): % x", f)
	}
	if code := <-done; code != 0 {
		t.Errorf("mvlan rm -f %s: exit %d\n%s", c1, code, a.log)
	}
	srv.Resume() // it reads what waited, in order
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srv.Log(), "DHCPRELEASE(wire0) "+addr.String()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq did not log the release of %s within 10 s of running again:\n%s", addr, srv.Log())
		}
	}
	time.Sleep(500 * time.Millisecond) // and whatever came after it
	if err := srv.WaitLease(addr, false, 0); err != nil {
		t.Errorf("the server's lease after the release: %v", err)
	}
}
