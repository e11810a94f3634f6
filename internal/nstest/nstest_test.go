package nstest_test

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

func TestSandbox(t *testing.T) {
	var sb *nstest.Sandbox
	var extra, peer, left string
	t.Run("build", func(t *testing.T) {
		sb = nstest.NewSandbox(t)
		for _, ns := range []string{sb.Path, sb.WirePath} {
			if !strings.HasPrefix(ns, "/run/netns/mvt-") {
				t.Fatalf("namespace path %s does not start with /run/netns/mvt-", ns)
			}
		}
		if out := sb.Run(t, sb.Name, "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "state UP") {
			t.Errorf("eth0 in %s is not up: %s", sb.Name, out)
		}
		if out := sb.Run(t, sb.WirePath, "ip", "-o", "link", "show", "wire0"); !strings.Contains(out, "state UP") {
			t.Errorf("wire0 in the wire is not up: %s", out)
		}
		peer = sb.AddVeth(t, "eth1")
		sb.Run(t, sb.WirePath, "ip", "link", "show", peer)
		extra = sb.Netns(t, "c1")
		// One the code under test makes (an agent's container), which
		// the test does not remove: the sandbox's clean-up does.
		left = "/run/netns/" + sb.Name + "-c2"
		if out, err := exec.Command("ip", "netns", "add", sb.Name+"-c2").CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}

		// Traffic over the pair, measured with the package's own ping.
		sb.Run(t, sb.Path, "ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
		sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.0.2.2/24", "dev", "wire0")
		if err := nstest.Ping(sb.Path, netip.MustParseAddr("192.0.2.2"), 2, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := nstest.Ping(sb.Path, netip.MustParseAddr("192.0.2.99"), 1, 300*time.Millisecond); err == nil {
			t.Fatal("ping of an absent address succeeded")
		}
		if _, err := nstest.RunErr(sb.Path, "false"); err == nil {
			t.Fatal("RunErr(false) returned no error")
		}
	})
	// The sub-test's cleanups have run: every namespace must be gone.
	for _, p := range []string{sb.Path, sb.WirePath, extra, left} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists after cleanup (%v)", p, err)
		}
	}
}

func TestCaptureAndPing6(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.Path, "ip", "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "2001:db8::2/64", "dev", "wire0", "nodad")
	c := nstest.NewCapture(t, sb.WirePath, "wire0")
	if err := nstest.Ping(sb.Path, netip.MustParseAddr("2001:db8::2"), 2, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// The echo request crossed the wire: ethertype IPv6, next header ICMPv6, type 128.
	_, err := c.Wait(time.Second, func(f []byte) bool {
		return len(f) > 54 && f[12] == 0x86 && f[13] == 0xdd && f[20] == 58 && f[54] == 128
	})
	if err != nil {
		t.Fatalf("echo request not captured on wire0: %v", err)
	}
}
