package main

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCPExpiry: a lease whose server stops answering expires end to
// end, in seconds. The server is nstest.DHCPServer (6 s leases; dnsmasq
// gives none under 2 min). The address stays on the link until the
// expiry (the renewal that is still waiting is cut off there) and comes
// off then; the log, the metric, ps and doctor say so. When the server
// answers again, the endpoint gets its lease back within the agent's
// retry interval (10 s, give or take 1 s), with its route.
func TestDHCPExpiry(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	srv := nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.70.1/24"), 6*time.Second)
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	startWith(a, "--metrics-addr", metricsAddr)
	t.Cleanup(e.cleanup)
	a.ok("network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0", "lan")
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	srv.Quiet(true)
	addr := addrOf(ep, false)
	if ep.Lease == nil || addr != "192.168.70.2/24" {
		t.Fatalf("%s got %q (lease %+v), want 192.168.70.2/24 from the test server", c1, addr, ep.Lease)
	}
	expiry := ep.Lease.Expiry
	eth0 := func() string { return e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0") }

	time.Sleep(time.Until(expiry.Add(-time.Second)))
	mustContain(t, "eth0 a second before the expiry", eth0(), addr)
	mustContain(t, "ps a second before the expiry", a.ok("ps"), addr+" (dhcp rebinding)")

	for deadline := expiry.Add(1500 * time.Millisecond); strings.Contains(eth0(), addr); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still on eth0 1.5 s after the lease expired (%s):\n%s", addr, expiry.Format(time.RFC3339Nano), a.log)
		}
	}
	waitLog(t, a, `msg="DHCP lease expired: the address is off the endpoint until a server answers" name=`+c1, 1)
	st := &statsEnv{t: t, sb: sb, a: a}
	waitMetric(st, `mvlan_dhcp_leases{family="ipv4",network="lan",state="expired"} 1`)
	mustContain(t, "ps after the expiry", a.ok("ps"), addr+" (dhcp expired)")
	if d := drift(t, a); len(d) != 1 || !strings.Contains(d[0], "endpoint "+c1+": DHCP lease of "+addr+" expired") {
		t.Errorf("doctor after the expiry: %q, want %s's lease reported expired", d, c1)
	}

	srv.Quiet(false)
	for deadline := time.Now().Add(13 * time.Second); !strings.Contains(eth0(), addr); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not back on eth0 13 s after the server answers again:\n%s", addr, a.log)
		}
	}
	mustContain(t, "routes after the new lease", e.in(c1, "ip", "route"), "default via 192.168.70.1 dev eth0")
	waitMetric(st, `mvlan_dhcp_leases{family="ipv4",network="lan",state="expired"} 0`)
}

// TestDHCPExpiredWhileDown: a lease that expired while the agent was
// stopped is taken off the link at start and asked for again at once
// (INIT, RFC 2131 4.4.5), not after the retry interval (10 s) that
// follows a failed try: the endpoint has its address back, with a new
// expiry, within 8 s of the start (the server answers at once; a slow
// machine's agent start has the rest).
func TestDHCPExpiredWhileDown(t *testing.T) {
	t.Parallel()
	_, a, e := dhcpShortLAN(t, "192.168.71.1/24")
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	if ep.Lease == nil {
		t.Fatalf("%s has no lease", c1)
	}
	a.stop()
	time.Sleep(time.Until(ep.Lease.Expiry.Add(time.Second)))
	a.start()
	started := time.Now()
	for ; ; time.Sleep(100 * time.Millisecond) {
		got, _ := e.endpoint(c1)
		if got.Lease != nil && got.Lease.State == "bound" && got.Lease.Expiry.After(started) {
			break
		}
		if time.Since(started) > retryExpiredWait*8/10 {
			t.Fatalf("%s has no new lease %v after the start (lease %+v): the expired lease was not asked for at once\n%s", c1, retryExpiredWait*8/10, got.Lease, a.log)
		}
	}
	waitLog(t, a, `msg="DHCP lease expired: the address is off the endpoint until a server answers" name=`+c1, 1)
}

// dhcpLAN starts an agent in sb with a DHCP network "lan" on its eth0,
// created with the extra flags (e.g. --subnet) too.
func dhcpLAN(t *testing.T, sb *nstest.Sandbox, extra ...string) (*agentProc, *env) {
	t.Helper()
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	a.start()
	t.Cleanup(e.cleanup)
	a.ok(append(append([]string{"network", "create", "--ipam-driver", "dhcp"}, extra...), "-o", "parent=eth0", "lan")...)
	return a, e
}

// dhcpShortLAN is dhcpLAN in a new sandbox whose wire has a DHCP server
// of 6 s leases at server (an address with its prefix).
func dhcpShortLAN(t *testing.T, server string) (*nstest.DHCPServer, *agentProc, *env) {
	t.Helper()
	sb := nstest.NewSandbox(t)
	srv := nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix(server), 6*time.Second)
	a, e := dhcpLAN(t, sb)
	return srv, a, e
}

// retryExpiredWait is the agent's wait after a failed try of an expired
// lease (engine.retryExpired).
const retryExpiredWait = 10 * time.Second

// TestDHCPRemovingExpiredNotGivenBack: an agent killed after an rm's
// "removing" record, before its DHCPRELEASE, gives the lease back on
// start (TestDHCPCrashPoints), from the leased address; but not a lease
// that ran out while the agent was down: the server has freed the
// address, another host may have it, and the start sends nothing from it
// (no ARP, no datagram) while it finishes the removal.
func TestDHCPRemovingExpiredNotGivenBack(t *testing.T) {
	t.Parallel()
	_, a, e := dhcpShortLAN(t, "192.168.72.1/24")
	c1 := e.name("1")
	addr := netip.MustParsePrefix(addrOf(e.runD(c1, "lan"), false)).Addr()
	a.stop()
	a.start("MVLAN_TEST_CRASHPOINT=endpoint-rm:after-state")
	a.mv("rm", "-f", c1)
	a.waitExit()
	time.Sleep(7 * time.Second) // past the lease, renewed or not (6 s)
	wire := nstest.NewCapture(t, e.sb.WirePath, "wire0")
	a.start()
	if f, err := wire.Wait(2*time.Second, fromIPv4(addr)); err == nil {
		t.Fatalf("after the start, a frame from %s, whose lease expired while the agent was down: % x\n%s", addr, f, a.log)
	}
	waitLog(t, a, `expired while the agent was down: nothing to give back" name=`+c1, 1)
	if strings.Contains(a.ok("ps"), c1) {
		t.Errorf("ps lists %s after the start finished its removal", c1)
	}
}

// fromIPv4 matches an ARP message whose sender is addr or an IPv4 packet
// from addr.
func fromIPv4(addr netip.Addr) func([]byte) bool {
	a := addr.As4()
	return func(f []byte) bool {
		switch {
		case len(f) >= 32 && f[12] == 0x08 && f[13] == 0x06:
			return [4]byte(f[28:32]) == a
		case len(f) >= 30 && f[12] == 0x08 && f[13] == 0x00:
			return [4]byte(f[26:30]) == a
		}
		return false
	}
}

// TestDHCPRemadeLinkNoExpiredAddr: a container's link made again on start
// (it was deleted while the agent was down) gets no address of an
// expired lease, and nothing is sent from it (the agent announces a new
// link's addresses): neither one the agent had taken off (here on an
// --internal network, which has no gateway to set) nor one that ran out
// while the agent was down, which the keeper has not seen yet. The server
// is quiet, so no new lease comes meanwhile.
func TestDHCPRemadeLinkNoExpiredAddr(t *testing.T) {
	for _, tc := range []struct {
		name       string
		create     []string
		expireLive bool // expire it before the agent goes down
	}{
		{"internal, expired before", []string{"--internal"}, true},
		{"expired while down", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb := nstest.NewSandbox(t)
			srv := nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.73.1/24"), 6*time.Second)
			a := newAgent(t, sb)
			e := &env{t: t, sb: sb, a: a}
			a.start()
			t.Cleanup(e.cleanup)
			a.ok(append([]string{"network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0"}, append(tc.create, "lan")...)...)
			c1 := e.name("1")
			addr := addrOf(e.runD(c1, "lan"), false)
			srv.Quiet(true)
			if tc.expireLive {
				ep, _ := e.endpoint(c1)
				time.Sleep(time.Until(ep.Lease.Expiry.Add(1500 * time.Millisecond)))
				waitLog(t, a, `msg="DHCP lease expired: the address is off the endpoint until a server answers" name=`+c1, 1)
			}
			a.kill()
			e.in(c1, "ip", "link", "del", "eth0")
			time.Sleep(7 * time.Second) // past the lease, renewed or not (6 s)
			wire := nstest.NewCapture(t, sb.WirePath, "wire0")
			a.start()
			if f, err := wire.Wait(2*time.Second, fromIPv4(netip.MustParsePrefix(addr).Addr())); err == nil {
				t.Fatalf("after the start, a frame from %s, whose lease expired: % x\n%s", addr, f, a.log)
			}
			link, err := exec.Command("ip", "-n", c1, "-o", "link", "show", "dev", "eth0").CombinedOutput()
			addrs, _ := exec.Command("ip", "-n", c1, "-o", "addr", "show", "dev", "eth0").CombinedOutput()
			if err != nil || strings.Contains(string(addrs), strings.Split(addr, "/")[0]+"/") {
				t.Fatalf("eth0 made again on start: %s%s; want it there without %s, whose lease expired\n%s", link, addrs, addr, a.log)
			}
		})
	}
}

// TestDHCPRemovingExpiredV4GivesBackV6: as TestDHCPRemovingExpiredNotGivenBack
// on a dual-stack DHCP network whose DHCPv6 lease (dnsmasq, 2 min) is
// still valid when the agent starts again: that one is given back (the
// server's lease file drops it) while the expired DHCPv4 one is not.
func TestDHCPRemovingExpiredV4GivesBackV6(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.74.1/24"), 6*time.Second)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:74::1/64", "dev", "wire0", "nodad")
	d6 := &dnsmasq{Dnsmasq: nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range=fd00:74::10,fd00:74::20,64,2m"), t: t}
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	a.start()
	t.Cleanup(e.cleanup)
	a.ok("network", "create", "--ipam-driver", "dhcp", "--ipv6", "-o", "parent=eth0", "lan")
	c1 := e.name("1")
	e.runD(c1, "lan")
	if line, held := d6.named6(c1); !held {
		t.Fatalf("dnsmasq has no DHCPv6 lease of %s: %q\n%s", c1, line, d6.Log())
	}
	a.stop()
	a.start("MVLAN_TEST_CRASHPOINT=endpoint-rm:after-state")
	a.mv("rm", "-f", c1)
	a.waitExit()
	time.Sleep(7 * time.Second) // past the DHCPv4 lease, renewed or not (6 s)
	a.start()
	waitLog(t, a, `expired while the agent was down: nothing to give back" name=`+c1, 1)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, held := d6.named6(c1); !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq still holds %s's DHCPv6 lease after the start gave it back:\n%s", c1, a.log)
		}
	}
}

// TestDHCPRenewalResolvUnwritable: a renewal that changes the lease's DNS
// servers while the container's resolv.conf cannot be written (it became
// a directory) still renews the lease, whose address is on the link: the
// record has the new expiry and DNS servers, and the log says the file
// was not written. (It was taken for a failed renewal, retried until the
// lease ran out.) Once it can be, the next renewal writes it, though the
// DNS servers did not change since.
func TestDHCPRenewalResolvUnwritable(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	srv := nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.76.1/24"), 6*time.Second)
	srv.SetDNS(netip.MustParseAddr("192.168.76.53"))
	a, e := dhcpLAN(t, sb)
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	if ep.Lease == nil || len(ep.Lease.DNS) != 1 {
		t.Fatalf("%s's lease %+v; want one DNS server", c1, ep.Lease)
	}
	p := filepath.Join("/etc/netns", c1, "resolv.conf")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(p) })
	srv.SetDNS(netip.MustParseAddr("192.168.76.54"))
	renewed := e.waitRenewed(c1, *ep.Lease)
	if renewed.Error != "" || len(renewed.DNS) != 1 || renewed.DNS[0] != netip.MustParseAddr("192.168.76.54") {
		t.Errorf("renewed lease: DNS %v, error %q; want 192.168.76.54 and none", renewed.DNS, renewed.Error)
	}
	waitLog(t, a, `msg="DHCP lease renewed, its DNS servers not written" name=`+c1, 1)
	// Writable again: the next renewal writes it, its DNS servers the same.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	e.waitRenewed(c1, renewed)
	if b, err := os.ReadFile(p); err != nil || !strings.Contains(string(b), "nameserver 192.168.76.54") {
		t.Errorf("resolv.conf after the next renewal: %q, %v; want nameserver 192.168.76.54", b, err)
	}
}

// waitRenewed waits until endpoint name's lease expires after was's, up to
// 3 s after was's T1, and returns it.
func (e *env) waitRenewed(name string, was api.Lease) api.Lease {
	e.t.Helper()
	for deadline := was.Renew.Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cur, _ := e.endpoint(name)
		if cur.Lease != nil && cur.Lease.Expiry.After(was.Expiry) {
			return *cur.Lease
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s's lease not renewed 3 s after T1 (lease %+v):\n%s", name, cur.Lease, e.a.log)
		}
	}
}
