package main

import (
	"bytes"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDHCPAddressInUseDeclined: a DHCP server that does not check its
// addresses (dnsmasq --no-ping) offers a container an address another
// host on the wire has (the LAN's router, say; here a macvlan of the
// wire's link in a namespace of its own, and the address reserved for the
// container's MAC with --dhcp-host). The agent probes
// the acknowledged address (ARP) before it takes it, hears the host
// answer, declines the lease (DHCPDECLINE) and asks again: the server
// gives the range's free address, and the host's address is never the
// container's (no frame from the container claims it).
func TestDHCPAddressInUseDeclined(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	const mac, taken, free = "02:00:00:66:00:10", "192.168.66.10", "192.168.66.11"
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.66.254/24", "dev", "wire0")
	host := sb.Netns(t, "h")
	sb.Run(t, sb.WirePath, "ip", "link", "add", "link", "wire0", "name", "h0", "netns", filepath.Base(host), "type", "macvlan", "mode", "bridge")
	sb.Run(t, host, "ip", "addr", "add", taken+"/24", "dev", "h0")
	sb.Run(t, host, "ip", "link", "set", "h0", "up")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--no-ping",
		"--dhcp-range=192.168.66.11,192.168.66.11,255.255.255.0,2m", "--dhcp-host="+mac+","+taken,
		"--dhcp-option=option:router,192.168.66.254")
	_, e := dhcpLAN(t, sb, "--subnet", "192.168.66.0/24")
	wire := nstest.NewCapture(t, sb.WirePath, "wire0")
	ep := e.runD(e.name("1"), "lan", "--mac", mac)
	if got := addrOf(ep, false); got != free+"/24" {
		t.Fatalf("container's address %q; want %s/24 (%s answers on the wire)\n%s", got, free, taken, srv.Log())
	}
	if !strings.Contains(srv.Log(), "DHCPDECLINE(wire0) "+taken) {
		t.Errorf("the server heard no DHCPDECLINE of %s:\n%s", taken, srv.Log())
	}
	// On the wire: the container's probe of the address (ARP, sender
	// 0.0.0.0), and no frame of the container's claiming it.
	hw, _ := net.ParseMAC(mac)
	tgt := netip.MustParseAddr(taken).As4()
	probed, claimed := false, false
	_, _ = wire.Wait(time.Second, func(f []byte) bool {
		if len(f) < 42 || !bytes.Equal(f[6:12], hw) {
			return false
		}
		isARP := f[12] == 0x08 && f[13] == 0x06
		probed = probed || isARP && [4]byte(f[28:32]) == [4]byte{} && [4]byte(f[38:42]) == tgt
		claimed = claimed || fromIPv4(netip.AddrFrom4(tgt))(f)
		return false
	})
	if !probed {
		t.Errorf("no ARP probe of %s from the container's MAC %s on the wire", taken, mac)
	}
	if claimed {
		t.Errorf("a frame from the container claimed %s, the host's", taken)
	}
}

// TestDHCPHostAddressRefused: an offer of this host's own address on the
// network's parent (its probe could not tell: a macvlan's frames do not go
// up the parent) is refused, naming it, and nothing is left: no
// endpoint, no binding in the server.
func TestDHCPHostAddressRefused(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	const mac, hostAddr = "02:00:00:67:00:05", "192.168.67.5"
	sb.Run(t, sb.Path, "ip", "addr", "add", hostAddr+"/24", "dev", "eth0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.67.254/24", "dev", "wire0")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--no-ping",
		"--dhcp-range=192.168.67.11,192.168.67.11,255.255.255.0,2m", "--dhcp-host="+mac+","+hostAddr)
	a, e := dhcpLAN(t, sb, "--subnet", "192.168.67.0/24")
	_, stderr, code := a.mv("run", "-d", "--name", e.name("1"), "--net", "lan", "--mac", mac)
	if code == 0 || !strings.Contains(stderr, "offered "+hostAddr+", an address of this host on eth0") {
		t.Fatalf("run offered the host's address: exit %d, %s; want it refused naming the host's", code, stderr)
	}
	if eps := a.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after the refusal: %+v; want none", eps)
	}
	if _, ok := srv.Lease(netip.MustParseAddr(hostAddr)); ok {
		t.Errorf("the server bound the host's address\n%s", srv.Log())
	}
}

// TestDHCPRenewalInUseDeclined: the server moves a container's lease, at
// its renewal (T1, 2 s), to an address another host on the wire has. The
// agent probes the new address, declines it, and the container never
// takes it (its lease stays as it was; the server, its binding declined,
// gives it another next time).
func TestDHCPRenewalInUseDeclined(t *testing.T) {
	t.Parallel()
	srv, _, e := dhcpShortLAN(t, "192.168.74.1/24")
	c1 := e.name("1")
	ep := e.runD(c1, "lan")
	taken := netip.MustParseAddr("192.168.74.50")
	host := e.sb.Netns(t, "h")
	e.sb.Run(t, e.sb.WirePath, "ip", "link", "add", "link", "wire0", "name", "h0", "netns", filepath.Base(host), "type", "macvlan", "mode", "bridge")
	e.sb.Run(t, host, "ip", "addr", "add", taken.String()+"/24", "dev", "h0")
	e.sb.Run(t, host, "ip", "link", "set", "h0", "up")
	srv.Move(ep.MAC, taken)
	for deadline := time.Now().Add(6 * time.Second); srv.Declines() == 0; time.Sleep(100 * time.Millisecond) {
		if cur, _ := e.endpoint(c1); addrOf(cur, false) == taken.String()+"/24" {
			t.Fatalf("the container took %s at its renewal; another host on the wire has it", taken)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DHCPDECLINE of %s in 6 s (the renewal is at 2 s)", taken)
		}
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cur, _ := e.endpoint(c1); addrOf(cur, false) == taken.String()+"/24" {
			t.Fatalf("the container took %s after declining it", taken)
		}
	}
}
