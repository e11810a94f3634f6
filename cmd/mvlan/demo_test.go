package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDemo runs `make demo`'s script as a newcomer would, in a sandbox of
// its own, and checks that every step passed and nothing is left behind.
func TestDemo(t *testing.T) {
	nstest.RequireRoot(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "mvt-" + hex.EncodeToString(b[:]) + "-demo"
	cmd := exec.Command("bash", "../../scripts/demo.sh")
	cmd.Env = append(os.Environ(), "DEMO_PREFIX="+prefix, "MVLAN_BIN="+mvlanBin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{"4 received, 0% packet loss", "default via 172.16.86.1", "172.16.86.10/24",
		`"Gateway": "172.16.86.1"`, `mvlan_endpoints{network="pub_net"} 2`, "2 received, 0% packet loss",
		"0 received, 100% packet loss", "Per VLAN", "Per network", `mvlan_vlan_rx_packets_total{parent="eth0",vlan="0"}`,
		`mvlan_network_tx_packets_total{network="pub_net"}`, `mvlan_policy_drops_total{network="pub_net",reason="ip_spoof"}`,
		`mvlan_attach_info{link="eth0",hook="ingress",mode=`, "demo finished: all steps passed", "sandbox removed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
	for _, ns := range []string{"-host", "-wire", "-c1", "-c2"} {
		if _, err := os.Stat("/run/netns/" + prefix + ns); err == nil {
			t.Errorf("demo left namespace %s%s", prefix, ns)
		}
	}
}
