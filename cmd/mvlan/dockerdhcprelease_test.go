package main

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDockerDHCPRelease: the lease of a Docker endpoint on a DHCP network
// (Docker's null IPAM) is given back exactly once, however Docker ends
// it. The test plays dockerd on the plugin socket, with dnsmasq on the
// wire: after a Leave (while the address is on the link) and then
// DeleteEndpoint, one DHCPRELEASE; after a DeleteEndpoint that no Leave
// came before (the link still in the sandbox), one DHCPRELEASE too. Each
// time the lease leaves dnsmasq's file. About 4 s.
func TestDockerDHCPRelease(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.65.1/24", "dev", "wire0")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-range=192.168.65.100,192.168.65.150,255.255.255.0,2m")
	netID := strings.Repeat("6a", 32)
	a, p := playDockerd(t, sb, netID)
	for _, tc := range []struct {
		name  string
		leave bool
	}{{"c1", true}, {"c2", false}} {
		ns, ep := sb.Netns(t, tc.name), strings.Repeat(tc.name, 32)
		p.call("NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep, "Interface": map[string]string{}})
		src := p.call("NetworkDriver.Join", map[string]any{"NetworkID": netID, "EndpointID": ep, "SandboxKey": ns})["SrcName"]
		sb.Run(t, sb.Path, "ip", "link", "set", src, "netns", filepath.Base(ns))
		sb.Run(t, ns, "ip", "link", "set", src, "name", "eth0")
		sb.Run(t, ns, "ip", "link", "set", "eth0", "up")
		addr := waitLeased(t, a, ep)
		if err := srv.WaitLease(addr, true, time.Second); err != nil {
			t.Fatal(err)
		}
		wire := nstest.NewCapture(t, sb.WirePath, "wire0")
		if tc.leave {
			p.call("NetworkDriver.Leave", map[string]any{"NetworkID": netID, "EndpointID": ep})
		}
		p.call("NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep})
		if err := srv.WaitLease(addr, false, 2*time.Second); err != nil {
			t.Errorf("%s (Leave %v): %v\nagent log:\n%s", tc.name, tc.leave, err, a.log)
		}
		n := 0
		for ; n < 3; n++ {
			if _, err := wire.Wait(time.Second, isRelease); err != nil {
				break
			}
		}
		if n != 1 {
			t.Errorf("%s (Leave %v): %d DHCPRELEASEs on the wire, want 1", tc.name, tc.leave, n)
		}
	}
}

// waitLeased waits (up to 10 s) until endpoint id has a DHCP lease and
// returns its address.
func waitLeased(t *testing.T, a *agentProc, id string) netip.Addr {
	t.Helper()
	return waitLeasedWithin(t, a, id, 10*time.Second)
}

// waitLeasedWithin is waitLeased, waiting up to within.
func waitLeasedWithin(t *testing.T, a *agentProc, id string, within time.Duration) netip.Addr {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, e := range a.endpoints() {
			if e.ID == id && e.Lease != nil && e.State == "ready" {
				return e.Lease.Addr.Addr()
			}
		}
	}
	t.Fatalf("endpoint %s has no lease %v after its link was moved:\n%s", id, within, a.log)
	return netip.Addr{}
}

// isRelease reports whether frame is a DHCPRELEASE (IPv4, UDP to port 67).
func isRelease(f []byte) bool { return isDHCP(dhcpv4.MessageTypeRelease)(f) }

// isDHCP matches a DHCPv4 client message of type typ (IPv4, UDP to port
// 67).
func isDHCP(typ dhcpv4.MessageType) func([]byte) bool {
	return func(f []byte) bool {
		if len(f) < 14+20+8 || f[12] != 0x08 || f[13] != 0x00 || f[14+9] != 17 {
			return false
		}
		ihl := int(f[14]&0x0f) * 4
		if len(f) < 14+ihl+8 || f[14+ihl+2] != 0 || f[14+ihl+3] != 67 {
			return false
		}
		m, err := dhcpv4.FromBytes(f[14+ihl+8:])
		return err == nil && m.MessageType() == typ
	}
}
