package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDockerDHCPLeaveWhileSeeking: a Docker endpoint on a DHCP network
// (Docker's null IPAM) that got no lease at hand-off asks again every
// 10 s; a Leave while such an ask waits for a server that does not answer
// ends the ask instead of waiting up to its 8 s for it (and every other
// Docker call with it, behind the driver's lock). The test plays dockerd
// on the plugin socket; the server on the wire refuses (DHCPNAK) at
// hand-off, then answers nothing. About 15 s.
func TestDockerDHCPLeaveWhileSeeking(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	srv := nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.72.1/24"), time.Minute)
	srv.Refuse(true)
	netID := strings.Repeat("5e", 32)
	a, p := playDockerd(t, sb, netID, "MVLAN_LOG_LEVEL=debug")
	ns, ep := sb.Netns(t, "c1"), strings.Repeat("c1", 32)
	p.joinRenumbered(netID, ep, ns, ns, func(int) {})
	if !waitFor(15*time.Second, func() bool { return strings.Contains(a.log.String(), `msg="Docker endpoint has no address"`) }) {
		t.Fatalf("premise: the refused lease at hand-off was not reported:\n%s", a.log)
	}
	srv.Refuse(false)
	srv.Quiet(true)
	wire := nstest.NewCapture(t, sb.WirePath, "wire0")
	if _, err := wire.Wait(15*time.Second, isDHCP(dhcpv4.MessageTypeDiscover)); err != nil {
		t.Fatalf("premise: no DHCPDISCOVER of the endpoint's next ask: %v\n%s", err, a.log)
	}
	time.Sleep(500 * time.Millisecond) // well into the ask, which lasts 8 s
	t0 := time.Now()
	p.call("NetworkDriver.Leave", map[string]any{"NetworkID": netID, "EndpointID": ep})
	took := time.Since(t0)
	p.call("NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep})
	if took > 4*time.Second {
		t.Errorf("Leave took %v: it waited for the endpoint's DHCP ask instead of ending it\n%s", took, a.log)
	}
	if got := a.endpoints(); len(got) != 0 {
		t.Errorf("endpoints after Leave and DeleteEndpoint: %+v", got)
	}
}
