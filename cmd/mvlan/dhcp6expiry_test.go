package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCP6Expiry: a DHCPv6 lease's life in seconds, against
// nstest.DHCPv6Server (6 s lifetimes, T1 2 s; dnsmasq gives none under
// 2 min): it is renewed at T1; when the server stops answering, the IPv6
// address stays on the link until the expiry and comes off then, while the
// IPv4 lease and address stay; the log, the metric, ps and doctor say so;
// when the server answers again the endpoint gets its address back; when
// the server has forgotten the binding (NoBinding on renewal) the agent
// asks for it with a Request (RFC 8415 18.2.10.1), and the server, which
// gives forgotten addresses to no one, gives it another: the lease is
// renewed with that one, in place of the old on the link, without
// expiring. ~25 s.
func TestDHCP6Expiry(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.72.1/24"), 10*time.Minute)
	srv := nstest.StartDHCPv6Server(t, sb.WirePath, "wire0", netip.MustParsePrefix("fd00:72::1/64"), 6*time.Second)
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	startWith(a, "--metrics-addr", metricsAddr)
	t.Cleanup(e.cleanup)
	a.ok("network", "create", "--ipam-driver", "dhcp", "--ipv6", "--subnet", "fd00:72::/64", "-o", "parent=eth0", "lan")
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	addr, addr4 := addrOf(ep, true), addrOf(ep, false)
	if ep.Lease6 == nil || addr != "fd00:72::2/64" || addr4 != "192.168.72.2/24" {
		t.Fatalf("%s got %v (lease %+v), want 192.168.72.2/24 and fd00:72::2/64 from the test servers", c1, ep.Addrs, ep.Lease6)
	}
	eth0 := func() string { return e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0") }
	waitLog(t, a, `msg="DHCPv6 lease renewed" name=`+c1, 1) // T1 is 2 s: within waitLog's 5 s

	srv.Quiet(true)
	got, _ := e.endpoint(c1)
	expiry := got.Lease6.Expiry
	time.Sleep(time.Until(expiry.Add(-time.Second)))
	mustContain(t, "eth0 a second before the expiry", eth0(), addr, addr4)
	for deadline := expiry.Add(1500 * time.Millisecond); strings.Contains(eth0(), addr); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still on eth0 1.5 s after the lease expired (%s):\n%s", addr, expiry.Format(time.RFC3339Nano), a.log)
		}
	}
	waitLog(t, a, `msg="DHCPv6 lease expired: the address is off the endpoint until a server answers" name=`+c1, 1)
	mustContain(t, "eth0 after the DHCPv6 expiry", eth0(), addr4)
	st := &statsEnv{t: t, sb: sb, a: a}
	waitMetric(st, `mvlan_dhcp_leases{family="ipv6",network="lan",state="expired"} 1`)
	waitMetric(st, `mvlan_dhcp_leases{family="ipv4",network="lan",state="bound"} 1`)
	mustContain(t, "ps after the expiry", a.ok("ps"), "(dhcp bound) (dhcp6 expired)")
	if d := drift(t, a); len(d) != 1 || !strings.Contains(d[0], "endpoint "+c1+": DHCPv6 lease of "+addr+" expired") {
		t.Errorf("doctor after the expiry: %q, want %s's DHCPv6 lease reported expired", d, c1)
	}

	// Once the lease expired the agent solicits for 7 s (sends at 0, 1 and
	// 3 s), then again 10 s (±10%) after that fails: a server that answers
	// again just after a Solicit's last send is heard up to 15 s later.
	srv.Quiet(false)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(eth0(), addr); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not back on eth0 20 s after the server answers again:\n%s", addr, a.log)
		}
	}
	waitMetric(st, `mvlan_dhcp_leases{family="ipv6",network="lan",state="expired"} 0`)

	srv.Forget()
	const renumbered = "fd00:72::3/64"
	for deadline := time.Now().Add(8 * time.Second); !strings.Contains(eth0(), renumbered); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no new address %s on eth0 8 s after the server forgot the binding:\n%s\n%s", renumbered, eth0(), a.log)
		}
	}
	if strings.Contains(eth0(), addr+" ") {
		t.Errorf("the forgotten %s is still on eth0:\n%s", addr, eth0())
	}
	waitLog(t, a, `msg="DHCPv6 lease renewed" name=`+c1+` network=lan addr=`+renumbered, 1)
	if strings.Contains(a.log.String(), "refused the renewal") {
		t.Errorf("the NoBinding took the lease off (refused the renewal) before the Request:\n%s", a.log)
	}
	if got, _ := e.endpoint(c1); addrOf(got, true) != renumbered || addrOf(got, false) != addr4 {
		t.Errorf("ps shows %s with %v, want %s and %s", c1, got.Addrs, addr4, renumbered)
	}
}
