package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCPHostShim: the DHCP server of a DHCP network runs on the host
// itself, on the network's host shim (mvh-lan, -o host_shim=IP, with
// -o allow_dhcp_server=true for its answers, as for a container; without
// it the guard drops them and run fails with no DHCP server answered): a
// container gets its lease from it through the shim (the parent passes no
// frame between the host and its macvlans), with the shim as its router,
// reaches the host, and rm's DHCPRELEASE reaches the server. (The shim
// cannot have the subnet's first address: mvlan reserves it as the
// gateway, on a DHCP network too.)
func TestDHCPHostShim(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	e := &env{t: t, sb: sb, a: a}
	a.start()
	t.Cleanup(e.cleanup)
	a.ok("network", "create", "--ipam-driver", "dhcp", "--subnet", "192.168.80.0/24", "-o", "parent=eth0",
		"-o", "host_shim=192.168.80.2", "-o", "allow_dhcp_server=true", "lan")
	srv := &dnsmasq{Dnsmasq: nstest.StartDnsmasq(t, sb.Path, "mvh-lan", "--except-interface=lo", "--dhcp-authoritative",
		"--dhcp-range=192.168.80.100,192.168.80.150,255.255.255.0,2m", "--dhcp-option=option:router,192.168.80.2"), t: t, agent: a}

	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	p, err := netip.ParsePrefix(addrOf(ep, false))
	if err != nil || p.Addr().Compare(netip.MustParseAddr("192.168.80.100")) < 0 || p.Addr().Compare(netip.MustParseAddr("192.168.80.150")) > 0 {
		t.Fatalf("%s got %q, want an address of the host's dnsmasq range 192.168.80.100-150", c1, addrOf(ep, false))
	}
	srv.waitLease(ep.MAC, time.Second, "lease of "+c1+" in the host's dnsmasq", func(l lease, ok bool) bool { return ok && l.addr == p.Addr() })
	mustContain(t, "routes of "+c1, e.in(c1, "ip", "route"), "default via 192.168.80.2 dev eth0")
	out, perr := e.pingFrom(c1, "192.168.80.2", false)
	e.wantPingOK("ping the host's shim from "+c1, out, exitOf(perr))
	e.a.ok("rm", "-f", c1)
	srv.waitLease(ep.MAC, 5*time.Second, "DHCPRELEASE through the shim", func(_ lease, ok bool) bool { return !ok })
	if strings.Contains(a.log.String(), "DHCPRELEASE not sent") {
		t.Errorf("the agent did not send the release:\n%s", a.log)
	}
}
