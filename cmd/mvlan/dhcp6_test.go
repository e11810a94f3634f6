package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// startDnsmasq6 serves DHCPv4 (192.168.70.100-150, router .1) and DHCPv6
// (fd00:70::10-20, with router advertisements whose prefix invites SLAAC
// too) on wire0, and only DHCPv4 (192.168.71.100-150) on peer; 2 min leases: dnsmasq's least, and it gives DHCPv6 T1 = half of
// it, which it does not let be set.
func startDnsmasq6(t *testing.T, sb *nstest.Sandbox, peer string) *dnsmasq {
	t.Helper()
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.70.1/24", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:70::1/64", "dev", "wire0", "nodad")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.71.1/24", "dev", peer)
	return &dnsmasq{Dnsmasq: nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--interface="+peer, "--dhcp-authoritative",
		"--dhcp-range=set:lan,192.168.70.100,192.168.70.150,255.255.255.0,2m", "--dhcp-option=tag:lan,option:router,192.168.70.1",
		"--dhcp-range=fd00:70::10,fd00:70::20,slaac,64,2m", "--dhcp-option=option6:dns-server,[fd00:70::53]", "--enable-ra",
		"--dhcp-option=tag:lan,option:dns-server,192.168.70.53",
		"--dhcp-range=192.168.71.100,192.168.71.150,255.255.255.0,2m"), t: t}
}

// lease6 returns the expiry and DUID of the lease file's line for addr.
func (d *dnsmasq) lease6(addr netip.Addr) (expiry int64, duid string, ok bool) {
	for _, f := range d.Lines() {
		// EXPIRY IAID ADDRESS NAME DUID
		if len(f) >= 5 && f[2] == addr.String() {
			exp, err := strconv.ParseInt(f[0], 10, 64)
			return exp, strings.ReplaceAll(f[4], ":", ""), err == nil
		}
	}
	return 0, "", false
}

// named6 reports whether the lease file has a DHCPv6 lease of host.
func (d *dnsmasq) named6(host string) (string, bool) {
	for _, f := range d.Lines() {
		if len(f) >= 5 && f[3] == host && strings.Contains(f[2], ":") {
			return strings.Join(f, " "), true
		}
	}
	return "", false
}

// waitLease6 polls the lease file (at most within) until ok(its line for addr).
func (d *dnsmasq) waitLease6(addr netip.Addr, within time.Duration, what string, ok func(exp int64, duid string, found bool) bool) int64 {
	d.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		exp, duid, found := d.lease6(addr)
		if ok(exp, duid, found) {
			return exp
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(d.Leases)
			d.t.Fatalf("%s: not seen within %v; lease file:\n%s\ndnsmasq log:\n%s\nagent log:\n%s", what, within, data, d.Log(), d.agent.log)
		}
	}
}

// linkLocal is the IPv6 link-local address of link ifName in namespace ns
// (the source of the router advertisements a server there sends).
func linkLocal(t *testing.T, ns, ifName string) netip.Addr {
	t.Helper()
	var out string
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ = nstest.RunErr(ns, "ip", "-6", "-o", "addr", "show", "dev", ifName, "scope", "link")
		if f := strings.Fields(out); len(f) >= 4 && f[2] == "inet6" {
			if p, err := netip.ParsePrefix(f[3]); err == nil {
				return p.Addr()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no link-local address on %s in %s:\n%s", ifName, ns, out)
		}
	}
}

// v6Of is ep's DHCPv6 address, failing the test unless it is one of the
// server's range, a /64 (the network's --subnet) with a bound lease.
func v6Of(t *testing.T, ep api.Endpoint) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(addrOf(ep, true))
	lo, hi := netip.MustParseAddr("fd00:70::10"), netip.MustParseAddr("fd00:70::20")
	if err != nil || p.Bits() != 64 || p.Addr().Compare(lo) < 0 || p.Addr().Compare(hi) > 0 || ep.Lease6 == nil || ep.Lease6.State != api.LeaseBound {
		t.Fatalf("%s has %v (lease %+v), want a bound lease of fd00:70::10-20 as a /64", ep.Name, ep.Addrs, ep.Lease6)
	}
	return p
}

// TestDHCP6: on a DHCP network with --ipv6 each endpoint also leases an
// IPv6 address from a real DHCPv6 server (dnsmasq): the address is on the
// link with the --subnet's prefix and none made from router advertisements
// (which give the default route, with -o ipv6_ra=accept), its DNS server in the container's
// resolv.conf after the IPv4 lease's, two such containers ping each other
// over IPv6 (their DHCPv6 traffic and neighbour discovery pass the
// endpoint programs), ps and the metric show the leases, rm releases the
// lease (gone from the server's file), the same name gets the same address
// back (the DUID derives from network and name), a crash between the
// DHCPv6 Reply and "ready" or between "removing" and the Release leaves no
// lease on the server once the agent is started again, a network whose
// wire has no DHCPv6 server refuses the container and gives its IPv4 lease
// back, and a SIGKILLed agent started again keeps the lease and renews it
// at the server's T1 (1 min: the test takes about that long; the rest runs
// within it).
func TestDHCP6(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	srv := startDnsmasq6(t, sb, sb.AddVeth(t, "eth1"))
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	srv.agent = a
	startWith(a, "--metrics-addr", metricsAddr)
	t.Cleanup(e.cleanup)
	e.a.ok("network", "create", "--ipam-driver", "dhcp", "--ipv6", "--subnet", "fd00:70::/64", "-o", "parent=eth0",
		"-o", "ipv6_ra=accept", "-o", "ipv6_ra_source="+linkLocal(t, sb.WirePath, "wire0").String(), "lan")
	c1, c2 := e.name("1"), e.name("2")
	ep1 := e.runD(c1, "lan")
	ep2 := e.runD(c2, "lan")
	a1, a2 := v6Of(t, ep1), v6Of(t, ep2)
	if a1 == a2 || addrOf(ep1, false) == "" {
		t.Fatalf("c1 has %v, c2 %v: want an IPv4 address and IPv6 addresses of their own", ep1.Addrs, ep2.Addrs)
	}
	first := srv.waitLease6(a1.Addr(), time.Second, "c1's lease in the server's file", func(_ int64, duid string, ok bool) bool {
		return ok && duid == ep1.Lease6.ClientID
	})
	// The default route comes from the server's router advertisements
	// (-o ipv6_ra=accept): DHCPv6 has no router option.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(e.in(c1, "ip", "-6", "route"), "default via fe80::"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no IPv6 default route from router advertisements in %s:\n%s", c1, e.in(c1, "ip", "-6", "route"))
			break
		}
	}
	if got := e.in(c1, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"); strings.Count(got, "inet6") != 1 || !strings.Contains(got, a1.String()) {
		t.Errorf("global IPv6 addresses of eth0 of %s:\n%s\nwant only %s (none made from router advertisements)", c1, got, a1)
	}
	out, perr := e.pingFrom(c1, a2.Addr().String(), false)
	e.wantPingOK("ping6 c2 from c1", out, exitOf(perr))
	out, perr = e.pingFrom(c2, "fd00:70::1", false)
	e.wantPingOK("ping6 the server from c2", out, exitOf(perr))
	mustContain(t, "ps", e.a.ok("ps"), "(dhcp bound) (dhcp6 bound)")
	var nets []struct {
		Containers map[string]struct {
			Name, IPv6Address string
			DNS               []string
		}
	}
	if err := json.Unmarshal([]byte(e.a.ok("network", "inspect", "lan")), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("network inspect lan: %v", err)
	}
	if c := nets[0].Containers[ep1.ID]; c.IPv6Address != a1.String() || strings.Join(c.DNS, " ") != "192.168.70.53 fd00:70::53" {
		t.Errorf("network inspect shows %s as %+v, want IPv6Address %s and DNS 192.168.70.53 fd00:70::53", c1, c, a1)
	}
	// The DHCPv6 lease's DNS server follows the IPv4 lease's.
	const resolv = "nameserver 192.168.70.53\nnameserver fd00:70::53\n"
	if out, _ := exec.Command("ip", "netns", "exec", c1, "cat", "/etc/resolv.conf").CombinedOutput(); !strings.HasSuffix(string(out), resolv) {
		t.Errorf("ip netns exec %s cat /etc/resolv.conf:\n%s\nwant it to end with\n%s", c1, out, resolv)
	}
	st := &statsEnv{t: t, sb: sb, a: a}
	waitMetric(st, `mvlan_dhcp_leases{family="ipv6",network="lan",state="bound"} 2`)

	e.a.ok("rm", "-f", c2)
	srv.waitLease6(a2.Addr(), 5*time.Second, "DHCPv6 Release on rm", func(_ int64, _ string, ok bool) bool { return !ok })
	waitNetnsGone(t, c2)
	if again := v6Of(t, e.runD(c2, "lan")); again != a2 {
		t.Errorf("re-created %s got %s, first had %s", c2, again, a2)
	}

	crashes6(t, e, srv)
	noServer6(t, e, srv)

	a.kill()
	a.start()
	if got, ok := e.endpoint(c1); !ok || addrOf(got, true) != a1.String() {
		t.Errorf("after restart ps shows %s with %v, want %s", c1, got.Addrs, a1)
	}
	srv.waitLease6(a1.Addr(), 75*time.Second, "renewal of c1's lease at T1 after SIGKILL and restart", func(exp int64, _ string, ok bool) bool {
		return ok && exp > first
	})
	waitLog(t, a, `msg="DHCPv6 lease renewed" name=`+c1, 1)
	mustContain(t, "eth0 of "+c1+" after the renewal", e.in(c1, "ip", "-6", "-o", "addr", "show", "dev", "eth0"), a1.String())
}

// crashes6: SIGKILL after the DHCPv6 Reply, before "ready" is stored
// (endpoint-create:after-lease6), and after "removing" is stored, before
// the Release (endpoint-rm:after-state): the server holds the container's
// DHCPv6 lease then, and none once the agent has started again.
func crashes6(t *testing.T, e *env, srv *dnsmasq) {
	t.Helper()
	for i, point := range []string{"endpoint-create:after-lease6", "endpoint-rm:after-state"} {
		name := e.name(string(rune('3' + i)))
		if strings.HasPrefix(point, "endpoint-rm") {
			e.runD(name, "lan")
		}
		e.a.stop()
		e.a.start("MVLAN_TEST_CRASHPOINT=" + point)
		if strings.HasPrefix(point, "endpoint-rm") {
			e.a.mv("rm", "-f", name)
		} else {
			e.a.mv("run", "-d", "--name", name, "--net", "lan")
		}
		e.a.waitExit()
		// dnsmasq rewrites its lease file in place: read until whole.
		if !waitFor(3*time.Second, func() bool { _, held := srv.named6(name); return held }) {
			data, _ := os.ReadFile(srv.Leases)
			t.Fatalf("%s: the server holds no DHCPv6 lease of %s before the restart; lease file:\n%s", point, name, data)
		}
		e.a.start()
		if line, held := srv.named6(name); held {
			t.Errorf("%s: after the restart the server still holds %s's DHCPv6 lease: %s\nagent log:\n%s", point, name, line, e.a.log)
		}
		if _, ok := e.endpoint(name); ok {
			t.Errorf("%s: ps lists %s after the restart undid it", point, name)
		}
	}
}

// noServer6: on a network with --ipv6 whose wire has a DHCPv4 server but
// no DHCPv6 one, run fails naming DHCPv6, leaves nothing and gives the
// IPv4 lease it took back.
func noServer6(t *testing.T, e *env, srv *dnsmasq) {
	t.Helper()
	e.a.ok("network", "create", "--ipam-driver", "dhcp", "--ipv6", "-o", "parent=eth1", "v4only")
	bad := e.name("9")
	_, errs, code := e.a.mv("run", "-d", "--name", bad, "--net", "v4only")
	if code == 0 || !strings.Contains(errs, "no IPv6 address for "+bad) || !strings.Contains(errs, "no DHCP server answered to DHCPv6 Solicit") {
		t.Errorf("run without a DHCPv6 server: exit %d, %q; want an error saying no DHCPv6 server answered", code, errs)
	}
	e.wantNothingLeft(bad)
	if line, held := srv.named(bad); held {
		t.Errorf("the server still holds the IPv4 lease of the refused %s: %s", bad, line)
	}
}
