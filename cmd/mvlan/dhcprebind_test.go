package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

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
