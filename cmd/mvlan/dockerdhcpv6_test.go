package main

import (
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDockerDHCPv6Refused: `docker network create -d DRIVER --ipam-driver
// null --ipv6` (Docker 25 and later ask the null IPAM driver for ::/0 too;
// Debian's dockerd 20.10 refuses it itself, so the test plays dockerd on
// the plugin socket) is refused with what to do instead, and leaves no
// network: the agent leases no IPv6 address for Docker's containers, which
// would run without one and each be reported as missing its DHCPv6 lease.
// The same network without --ipv6 is made, as a DHCP network.
func TestDockerDHCPv6Refused(t *testing.T) {
	t.Parallel()
	a, p := pluginAgent(t, nstest.NewSandbox(t))
	netID := strings.Repeat("6b", 32)
	create := map[string]any{"NetworkID": netID,
		"Options": map[string]any{"com.docker.network.enable_ipv6": true,
			"com.docker.network.generic": map[string]string{"parent": "eth0"}},
		"IPv4Data": []map[string]any{{"AddressSpace": "null", "Pool": "0.0.0.0/0"}},
		"IPv6Data": []map[string]any{{"AddressSpace": "null", "Pool": "::/0"}}}
	msg := p.refused("NetworkDriver.CreateNetwork", create)
	for _, want := range []string{"--ipv6 with --ipam-driver null", "without it", "--ipv6=false"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	if out := strings.TrimSpace(a.ok("network", "ls", "-q")); out != "" {
		t.Fatalf("after the refusal mvlan network ls -q: %q, want no network", out)
	}

	delete(create, "IPv6Data")
	create["Options"].(map[string]any)["com.docker.network.enable_ipv6"] = false
	p.call("NetworkDriver.CreateNetwork", create)
	if got := strings.TrimSpace(a.ok("network", "inspect", "-f", "{{.IPAM.Driver}} {{.EnableIPv6}}", netID)); got != "dhcp false" {
		t.Fatalf("without --ipv6: mvlan network inspect: %q, want \"dhcp false\"", got)
	}
}
