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

// TestDockerDHCPLeaveWhileSeeking: a Docker endpoint on a DHCP network
// (Docker's null IPAM) that got no lease at hand-off asks again every
// 10 s; a Leave while such an ask waits for a server that does not answer
// ends the ask instead of waiting up to its 8 s for it (and every other
// Docker call with it, behind the driver's lock). The test plays dockerd
// on the plugin socket; the server on the wire refuses (DHCPNAK) at
// hand-off, then answers nothing. About 15 s.
func TestDockerDHCPLeaveWhileSeeking(t *testing.T) {
	sb := nstest.NewSandbox(t)
	srv := nstest.StartDHCPServer(t, sb.WirePath, "wire0", netip.MustParsePrefix("192.168.72.1/24"), time.Minute)
	srv.Refuse(true)
	a := newAgent(t, sb)
	sock := filepath.Join(a.dir, "mvt-seek.sock")
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock, "MVLAN_LOG_LEVEL=debug"}
	a.start()
	p := &pluginConn{t: t, sb: sb, sock: sock}
	netID := strings.Repeat("5e", 32)
	p.call("NetworkDriver.CreateNetwork", map[string]any{"NetworkID": netID,
		"Options":  map[string]any{"com.docker.network.generic": map[string]string{"parent": "eth0"}},
		"IPv4Data": []map[string]any{{"AddressSpace": "null", "Pool": "0.0.0.0/0"}}})
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
