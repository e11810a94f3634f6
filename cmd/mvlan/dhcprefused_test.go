package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCPRefusedAddressFreed: a lease that ends (here refused by the
// server: DHCPNAK; an expiry takes the same path) gives its address up in
// the datapath too, not only on the link: the server may give it to
// another host, and the other endpoints must then let that host's ARP
// through. Two containers on a network with --subnet 192.168.64.0/25
// lease from dnsmasq; it restarts renumbered (range .200-.250, outside the
// --subnet, so c1 gets no new lease; c2 keeps its address by a
// --dhcp-host), refuses c1's renewal, and c1's address goes. A host on the
// wire with c1's former address then pings c2: its ARP request claims
// that address. While c1 held it, that ARP was dropped (arp_spoof), as it
// should be; after, the ping is answered. About 10 s.
func TestDHCPRefusedAddressFreed(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.64.1/24", "dev", "wire0")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative",
		"--dhcp-range=192.168.64.100,192.168.64.120,255.255.255.0,2m", "--dhcp-option=option:T1,3")
	a, e := dhcpLAN(t, sb, "--subnet", "192.168.64.0/25")
	c1, c2 := e.name("1"), e.name("2")
	ep1, ep2 := e.runD(c1, "lan"), e.runD(c2, "lan")
	addr1, addr2 := netip.MustParsePrefix(addrOf(ep1, false)), netip.MustParsePrefix(addrOf(ep2, false)).Addr()
	// The other host: the wire, with c1's address as a second one.
	other := func() (string, error) {
		e.in(sb.WirePath, "ip", "neigh", "flush", "dev", "wire0")
		return nstest.RunErr(sb.WirePath, "ping", "-c", "2", "-W", "1", "-i", "0.2", "-I", addr1.Addr().String(), addr2.String())
	}
	e.in(sb.WirePath, "ip", "addr", "add", addr1.String(), "dev", "wire0")
	if out, err := other(); err == nil {
		t.Fatalf("a host claiming %s (%s's) pinged %s: its ARP should have been dropped:\n%s", addr1, c1, c2, out)
	}
	e.in(sb.WirePath, "ip", "addr", "del", addr1.String(), "dev", "wire0")

	srv.Stop()
	renumbered := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative",
		"--dhcp-range=192.168.64.200,192.168.64.250,255.255.255.0,2m", "--dhcp-option=option:T1,3",
		"--dhcp-host="+ep2.MAC+","+addr2.String())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, _ := e.endpoint(c1); got.Lease != nil && got.Lease.State == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's lease not refused 10 s after the server renumbered:\n%s\ndnsmasq:\n%s", c1, a.log, renumbered.Log())
		}
	}
	mustContain(t, "agent log", a.log.String(), "DHCPNAK")
	if eth0 := e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0"); strings.Contains(eth0, addr1.String()) {
		t.Errorf("%s still on %s's eth0 after the DHCPNAK:\n%s", addr1, c1, eth0)
	}
	e.in(sb.WirePath, "ip", "addr", "add", addr1.String(), "dev", "wire0")
	for deadline := time.Now().Add(3 * time.Second); ; {
		out, err := other()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a host with %s (no longer %s's) pinging %s: %v\n%s\nagent log:\n%s", addr1, c1, c2, err, out, a.log)
		}
	}
	if got, _ := e.endpoint(c2); addrOf(got, false) != addr2.String()+"/24" || got.Lease == nil || got.Lease.State == "expired" {
		t.Errorf("%s after the renumbering: %s %+v, want %s kept", c2, addrOf(got, false), got.Lease, addr2)
	}
}

// TestDHCPRefusalBackoff: a server that refuses every request (DHCPNAK;
// nstest.DHCPServer, as dnsmasq cannot be made to refuse what it offered)
// is not asked in a tight loop. The renewal's refusal takes the address
// off and a new lease is asked for at once; each refusal in a row of that
// doubles the wait (1 s, 2 s, 4 s...): over 6 s the server refuses 3 to
// 6 requests (without the backoff, 17 here: one per exchange and store
// write, for ever); doctor names the refusal. Once it answers again, the lease comes back at the
// next try. About 10 s.
func TestDHCPRefusalBackoff(t *testing.T) {
	t.Parallel()
	srv, a, e := dhcpShortLAN(t, "192.168.71.1/24")
	c1 := e.name("1")
	e.runD(c1, "lan")
	srv.Refuse(true)
	for deadline := time.Now().Add(5 * time.Second); srv.Naks() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal refused 5 s after the server began refusing:\n%s", a.log)
		}
	}
	time.Sleep(6 * time.Second)
	if n := srv.Naks(); n < 3 || n > 6 {
		t.Errorf("the server refused %d requests in the 6 s after the first refusal, want 3 to 6 (a backoff of 0, 1, 2, 4 s)\n%s", n, a.log)
	}
	waitLog(t, a, `msg="DHCP server refused the new lease it offered (DHCPNAK)`, 2)
	if d := drift(t, a); len(d) != 1 || !strings.Contains(d[0], "endpoint "+c1+": DHCP lease of ") ||
		!strings.Contains(d[0], "taken off: the server refused it (") || !strings.Contains(d[0], "(DHCPNAK)") {
		t.Errorf("doctor while the server refuses: %q; want %s's lease taken off, the DHCPNAK named", d, c1)
	}
	srv.Refuse(false)
	for deadline := time.Now().Add(13 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, _ := e.endpoint(c1); got.Lease != nil && got.Lease.State == "bound" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no lease 13 s after the server stopped refusing:\n%s", c1, a.log)
		}
	}
}

// TestDHCPGatewayOfferRefused: a DHCP server on the wire (any host there
// can answer) that offers the address of the router it names, the
// network's gateway, gets a refusal before it binds anything: the run
// fails naming the address and why, and no container or lease is left.
// With the address given, every container of the network would drop the
// real router's ARP.
func TestDHCPGatewayOfferRefused(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.65.254/24", "dev", "wire0")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--no-ping",
		"--dhcp-range=192.168.65.1,192.168.65.1,255.255.255.0,2m", "--dhcp-option=option:router,192.168.65.1")
	a, e := dhcpLAN(t, sb, "--subnet", "192.168.65.0/24")
	_, stderr, code := a.mv("run", "-d", "--name", e.name("1"), "--net", "lan")
	if code == 0 || !strings.Contains(stderr, "offered 192.168.65.1, the router it names itself") {
		t.Fatalf("run on a server offering its router's address: exit %d, %s; want it refused naming the router", code, stderr)
	}
	if eps := a.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after the refusal: %+v; want none", eps)
	}
	if _, ok := srv.Lease(netip.MustParseAddr("192.168.65.1")); ok {
		t.Errorf("the server bound the router's address\n%s", srv.Log())
	}
}
