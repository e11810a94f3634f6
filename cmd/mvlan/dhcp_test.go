package main

import (
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/internal/nstest"
)

// dnsmasq is a DHCP server (nstest.Dnsmasq) run by a test, with the
// lease queries of these tests; a wait that fails shows the agent's log.
type dnsmasq struct {
	*nstest.Dnsmasq
	t     *testing.T
	agent *agentProc // its log is shown on failure
}

// startDnsmasq serves 192.168.60.100-150 on wire0 (router .1) and
// 10.99.0.100-150 on peer (for a network whose --subnet excludes it),
// with 2 min leases (dnsmasq's least) and T1 = 4 s, so that renewals come
// quickly.
func startDnsmasq(t *testing.T, sb *nstest.Sandbox, peer string) *dnsmasq {
	t.Helper()
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.60.1/24", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "10.99.0.1/24", "dev", peer)
	return &dnsmasq{Dnsmasq: nstest.StartDnsmasq(t, sb.WirePath, "wire0", lanFlags(peer, "192.168.60.100,192.168.60.150")...), t: t}
}

// lanFlags are startDnsmasq's dnsmasq flags with lan (FIRST,LAST) as
// wire0's range.
func lanFlags(peer, lan string) []string {
	return []string{"--interface=" + peer, "--dhcp-authoritative",
		"--dhcp-range=set:lan," + lan + ",255.255.255.0,2m",
		"--dhcp-range=set:far,10.99.0.100,10.99.0.150,255.255.255.0,2m",
		"--dhcp-option=tag:lan,option:router,192.168.60.1", "--dhcp-option=tag:lan,option:dns-server,192.168.60.53,192.168.60.54",
		"--dhcp-option=tag:lan,option:domain-name,lan.example", "--dhcp-option=option:T1,4", "--dhcp-option=option:T2,100"}
}

// lease is a line of dnsmasq's lease file.
type lease struct {
	expiry int64
	mac    string
	addr   netip.Addr
}

// lease returns the lease file's line for mac.
func (d *dnsmasq) lease(mac string) (lease, bool) {
	for _, f := range d.Lines() {
		if len(f) >= 3 && f[1] == mac {
			exp, err1 := strconv.ParseInt(f[0], 10, 64)
			a, err2 := netip.ParseAddr(f[2])
			if err1 == nil && err2 == nil {
				return lease{exp, mac, a}, true
			}
		}
	}
	return lease{}, false
}

// waitLease polls the lease file (at most d) until ok(lease of mac, found).
func (d *dnsmasq) waitLease(mac string, within time.Duration, what string, ok func(lease, bool) bool) lease {
	d.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		l, found := d.lease(mac)
		if ok(l, found) {
			return l
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(d.Leases)
			d.t.Fatalf("%s: not seen within %v; lease file:\n%s\ndnsmasq log:\n%s\nagent log:\n%s", what, within, data, d.Log(), d.agent.log)
		}
	}
}

// TestDHCP: a network with --ipam-driver dhcp takes its addresses from a
// real DHCP server (dnsmasq) on the wire: run -d gets an address of the
// server's range and its router; the agent renews at T1, unicast to the
// server (the lease file's expiry moves), also after a SIGKILL and
// restart; rm releases the lease (gone from the file); re-created under
// the same name, the container gets the same MAC and address; an offer
// outside --subnet and a server that does not answer are refused with
// clear errors, leaving nothing; the metric counts the leases.
func TestDHCP(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	peer := sb.AddVeth(t, "eth1")
	srv := startDnsmasq(t, sb, peer)
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	srv.agent = a
	startWith(a, "--metrics-addr", metricsAddr)
	t.Cleanup(e.cleanup)
	e.a.ok("network", "create", "--ipam-driver", "dhcp", "-o", "parent=eth0", "lan") // no --subnet: any offer
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	wire := nstest.NewCapture(t, sb.WirePath, "wire0") // the renewal at T1
	addr := addrOf(ep, false)
	p, err := netip.ParsePrefix(addr)
	if err != nil || p.Bits() != 24 || p.Addr().Compare(netip.MustParseAddr("192.168.60.100")) < 0 || p.Addr().Compare(netip.MustParseAddr("192.168.60.150")) > 0 {
		t.Fatalf("%s got %q, want an address of the server's range 192.168.60.100-150/24", c1, addr)
	}
	mustContain(t, "eth0 of "+c1, e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0"), addr)
	mustContain(t, "routes of "+c1, e.in(c1, "ip", "route"), "default via 192.168.60.1 dev eth0")
	out, perr := e.pingFrom(c1, "192.168.60.1", false)
	e.wantPingOK("ping the server's router from "+c1, out, exitOf(perr))
	first := srv.waitLease(ep.MAC, time.Second, "lease of "+c1, func(l lease, ok bool) bool { return ok && l.addr == p.Addr() })
	// The lease's DNS servers and domain: in the resolv.conf that ip netns
	// exec mounts, and in inspect.
	const resolv = "nameserver 192.168.60.53\nnameserver 192.168.60.54\nsearch lan.example\n"
	if out, _ := exec.Command("ip", "netns", "exec", c1, "cat", "/etc/resolv.conf").CombinedOutput(); !strings.HasSuffix(string(out), resolv) {
		t.Errorf("ip netns exec %s cat /etc/resolv.conf:\n%s\nwant it to end with\n%s", c1, out, resolv)
	}
	if got := strings.TrimSpace(e.a.ok("network", "inspect", "-f", "{{range .Containers}}{{.DNS}} {{.DNSSearch}}{{end}}", "lan")); got != "[192.168.60.53 192.168.60.54] [lan.example]" {
		t.Errorf("inspect lan: DNS of %s %q, want [192.168.60.53 192.168.60.54] [lan.example]", c1, got)
	}
	ipamOf := func() string {
		return strings.TrimSpace(e.a.ok("network", "inspect", "-f", "{{.IPAM.Driver}}{{range .IPAM.Config}} {{.Subnet}} {{.Gateway}}{{end}}", "lan"))
	}
	if got := ipamOf(); got != "dhcp 192.168.60.0/24 192.168.60.1" { // learned from the first lease
		t.Errorf("inspect lan after the first lease: IPAM %q, want the lease's subnet and router: dhcp 192.168.60.0/24 192.168.60.1", got)
	}

	renewed := srv.waitLease(ep.MAC, 10*time.Second, "renewal at T1 (4 s)", func(l lease, ok bool) bool { return ok && l.expiry > first.expiry })
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(a.log.String(), "DHCP lease renewed"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server renewed, the agent did not log it:\n%s", a.log)
		}
	}
	// RENEWING, unicast from the container's address to the server (RFC
	// 2131 4.4.5), through the endpoint's datapath.
	if _, err := wire.Wait(time.Second, func(f []byte) bool {
		return isDHCP(dhcpv4.MessageTypeRequest)(f) && netip.AddrFrom4([4]byte(f[26:30])) == p.Addr() &&
			netip.AddrFrom4([4]byte(f[30:34])) == netip.MustParseAddr("192.168.60.1")
	}); err != nil {
		t.Errorf("renewal: no DHCPREQUEST from %s to the server 192.168.60.1 on the wire: %v\n%s", p.Addr(), err, a.log)
	}

	a.kill()
	a.start()
	srv.waitLease(ep.MAC, 10*time.Second, "renewal after SIGKILL and restart", func(l lease, ok bool) bool { return ok && l.expiry > renewed.expiry })
	if got, ok := e.endpoint(c1); !ok || addrOf(got, false) != addr {
		t.Errorf("after restart ps shows %s with %q, want %s", c1, addrOf(got, false), addr)
	}
	if got := ipamOf(); got != "dhcp 192.168.60.0/24 192.168.60.1" {
		t.Errorf("inspect lan after restart: IPAM %q, want the learned dhcp 192.168.60.0/24 192.168.60.1", got)
	}
	_, errs, code := e.a.mv("network", "create", "--subnet", "192.168.60.0/25", "-o", "parent=eth1", "clash")
	if code == 0 || !strings.Contains(errs, "overlaps subnet 192.168.60.0/24 of network lan") {
		t.Errorf("a network overlapping lan's learned subnet: exit %d, %q; want it refused naming lan", code, errs)
	}
	st := &statsEnv{t: t, sb: sb, a: a}
	waitMetric(st, `mvlan_dhcp_leases{family="ipv4",network="lan",state="bound"} 1`) // between T1 and the ACK it is renewing

	e.a.ok("rm", "-f", c1)
	srv.waitLease(ep.MAC, 5*time.Second, "DHCPRELEASE on rm", func(_ lease, ok bool) bool { return !ok })
	waitNetnsGone(t, c1)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat("/etc/netns/" + c1); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/etc/netns/%s still there 5 s after rm", c1)
		}
	}
	again := e.runD(c1, "lan")
	if again.MAC != ep.MAC || addrOf(again, false) != addr {
		t.Errorf("re-created %s: MAC %s address %s, first had %s %s", c1, again.MAC, addrOf(again, false), ep.MAC, addr)
	}

	// The server renumbers (another range, its leases forgotten): c1's
	// next renewal is refused (DHCPNAK); the old address goes at once and
	// a new one of the new range comes, with the route.
	srv.Stop()
	srv.Dnsmasq = nstest.StartDnsmasq(t, sb.WirePath, "wire0", lanFlags(peer, "192.168.60.200,192.168.60.250")...)
	renumbered := srv.waitLease(again.MAC, 15*time.Second, "a new lease after the DHCPNAK", func(l lease, ok bool) bool {
		return ok && l.addr.Compare(netip.MustParseAddr("192.168.60.200")) >= 0
	})
	newAddr := netip.PrefixFrom(renumbered.addr, 24).String()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, _ := e.endpoint(c1); addrOf(got, false) == newAddr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ps never showed %s with %s:\n%s", c1, newAddr, a.log)
		}
	}
	eth0 := e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0")
	if mustContain(t, "eth0 after the DHCPNAK", eth0, newAddr); strings.Contains(eth0, addr+" ") {
		t.Errorf("the refused %s is still on eth0:\n%s", addr, eth0)
	}
	mustContain(t, "routes after the DHCPNAK", e.in(c1, "ip", "route"), "default via 192.168.60.1 dev eth0")
	mustContain(t, "agent log", a.log.String(), "DHCPNAK")
	addr = newAddr

	e.a.ok("network", "create", "--ipam-driver", "dhcp", "--subnet", "192.168.61.0/24", "-o", "parent=eth1", "narrow")
	bad := e.name("2")
	_, errs, code = e.a.mv("run", "-d", "--name", bad, "--net", "narrow")
	if code == 0 || !strings.Contains(errs, "offered 10.99.0.") || !strings.Contains(errs, "outside the network's --subnet 192.168.61.0/24") {
		t.Errorf("run on a network whose --subnet excludes the offer: exit %d, %q; want an error naming the offer and the subnet", code, errs)
	}
	e.wantNothingLeft(bad)

	srv.Stop()
	_, errs, code = e.a.mv("run", "-d", "--name", bad, "--net", "lan")
	if code == 0 || !strings.Contains(errs, "no DHCP server answered") {
		t.Errorf("run with the server stopped: exit %d, %q; want an error saying no DHCP server answered", code, errs)
	}
	e.wantNothingLeft(bad)
	// Past T1 with no server, c1 keeps its address and is reported.
	waitMetric(st, `mvlan_dhcp_leases{family="ipv4",network="lan",state="renewing"} 1`)
	mustContain(t, "ps with the server stopped", e.a.ok("ps"), addr+" (dhcp renewing)")
	waitLog(t, a, `msg="DHCP renewal failed" name=`+c1, 1)
	if d := drift(t, a); len(d) != 1 || !strings.Contains(d[0], "endpoint "+c1+": DHCP lease of "+addr+" not renewed") {
		t.Errorf("doctor with the server stopped: %q, want c1's lease reported as not renewed", d)
	}
	mustContain(t, "eth0 of "+c1+" with the server stopped", e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0"), addr)
}

// wantNothingLeft: no endpoint, namespace or link named name remains.
func (e *env) wantNothingLeft(name string) {
	e.t.Helper()
	if _, ok := e.endpoint(name); ok {
		e.t.Errorf("ps lists %s after its failed run", name)
	}
	if _, err := os.Stat("/run/netns/" + name); err == nil {
		e.t.Errorf("/run/netns/%s left after its failed run", name)
	}
}

// waitMetric polls /metrics (at most 10 s) until it has line.
func waitMetric(st *statsEnv, line string) {
	st.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got := st.scrape()
		if strings.Contains(got, line) {
			return
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("metrics never showed %s:\n%s\nagent log:\n%s", line, got, st.a.log)
		}
	}
}
