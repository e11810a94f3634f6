package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDockerDHCPKeys: a Docker endpoint on a DHCP network (Docker's null
// IPAM) is leased its address on its own link in its sandbox, by that
// link's index there, which need not be the one it had in the host
// namespace: a move keeps the index only if the sandbox has no link with
// it. The test plays dockerd on the plugin socket, with dnsmasq on the
// wire; each sandbox has a link of its own at the index the Join's link
// has in the host namespace, so the move gives the link another. c1's is
// a macvlan (the container's): the agent keys c1 at its own link, not at
// that one. c2's attach at hand-off fails: its sandbox key names nothing
// while the agent reads the sandbox's cookie (the agent holds before and
// after the attach, MVLAN_TEST_HOLDPOINT), so c2 is made ready with its
// link's keys in the host namespace; the agent attaches it in its sandbox
// before it asks for its lease, and leases it there. About 20 s.
func TestDockerDHCPKeys(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.67.1/24", "dev", "wire0")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-range=192.168.67.100,192.168.67.150,255.255.255.0,2m")
	netID := strings.Repeat("6b", 32)
	a, p := playDockerd(t, sb, netID, "MVLAN_TEST_HOLD=2s", "MVLAN_LOG_LEVEL=debug",
		"MVLAN_TEST_HOLDPOINT=docker-finish:before-attach,docker-finish:after-attach")
	keyed := func(ep, ns string, within time.Duration) {
		t.Helper()
		addr := waitLeasedWithin(t, a, ep, within)
		if err := srv.WaitLease(addr, true, time.Second); err != nil {
			t.Error(err)
		}
		mustContain(t, "ip addr in "+ns, sb.Run(t, ns, "ip", "-4", "addr", "show", "dev", "eth0"), addr.String()+"/24")
		if got, want := endpointIfindex(t, a, ep), linkIndex(t, ns, "eth0"); got != want {
			t.Errorf("endpoint %s keyed at ifindex %d, want its link's in its sandbox, %d", ep[:12], got, want)
		}
	}

	c1, ep1 := sb.Netns(t, "c1"), strings.Repeat("c1", 32)
	p.joinRenumbered(netID, ep1, c1, c1, func(idx int) {
		sb.Run(t, c1, "ip", "link", "add", "lower0", "type", "bridge")
		sb.Run(t, c1, "ip", "link", "add", "link", "lower0", "name", "trap0", "index", strconv.Itoa(idx), "type", "macvlan")
		sb.Run(t, c1, "ip", "link", "set", "trap0", "up")
	})
	keyed(ep1, c1, 15*time.Second)

	c2, ep2 := sb.Netns(t, "c2"), strings.Repeat("c2", 32)
	key2 := filepath.Join(t.TempDir(), "c2")
	if err := os.WriteFile(key2, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bind := func() {
		if err := unix.Mount(c2, key2, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind the sandbox key: %v", err)
		}
	}
	bind()
	t.Cleanup(func() { _ = unix.Unmount(key2, unix.MNT_DETACH) })
	p.joinRenumbered(netID, ep2, key2, c2, func(idx int) {
		sb.Run(t, c2, "ip", "link", "add", "blk0", "index", strconv.Itoa(idx), "type", "bridge")
	})
	// The agent sees the link up within 250 ms and holds 2 s before the
	// attach: the key names nothing then, and c2's namespace again while
	// it holds after the attach, before c2 is ready (a ready endpoint
	// whose namespace is gone is released).
	time.Sleep(time.Second)
	if err := unix.Unmount(key2, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(a.log.String(), `msg="Docker endpoint ready without its datapath programs`); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			bind()
			t.Fatalf("premise: c2's attach at hand-off did not fail:\n%s", a.log)
		}
	}
	bind()
	keyed(ep2, c2, 25*time.Second)
	if t.Failed() {
		t.Logf("agent log:\n%s", a.log)
	}
}

// joinRenumbered does what dockerd does for a container on DHCP network
// netID whose sandbox key is key: CreateEndpoint and Join, then the link
// moved into the namespace at ns, named eth0 and up. Before the move,
// trap makes a link there at idx, the index the link has in the host
// namespace, so that the move gives the link another.
func (p *pluginConn) joinRenumbered(netID, ep, key, ns string, trap func(idx int)) {
	p.t.Helper()
	p.call("NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep, "Interface": map[string]string{}})
	src := p.call("NetworkDriver.Join", map[string]any{"NetworkID": netID, "EndpointID": ep, "SandboxKey": key})["SrcName"]
	if src == "" {
		p.t.Fatalf("Join named no link")
	}
	trap(linkIndex(p.t, p.sb.Path, src))
	p.sb.Run(p.t, p.sb.Path, "ip", "link", "set", src, "netns", filepath.Base(ns))
	p.sb.Run(p.t, ns, "ip", "link", "set", src, "name", "eth0")
	p.sb.Run(p.t, ns, "ip", "link", "set", "eth0", "up")
}

// linkIndex is the ifindex of link name in the namespace at ns.
func linkIndex(t testing.TB, ns, name string) int {
	t.Helper()
	var idx int
	err := nstest.In(ns, func() error { // not ip's output: it may open with an error about a peer's namespace
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			idx = ifi.Index
		}
		return err
	})
	if err != nil {
		t.Fatalf("index of %s in %s: %v", name, ns, err)
	}
	return idx
}

// endpointIfindex is the ifindex the agent keys endpoint id at.
func endpointIfindex(t testing.TB, a *agentProc, id string) int {
	t.Helper()
	for _, e := range a.endpoints() {
		if e.ID == id {
			return e.Ifindex
		}
	}
	t.Fatalf("no endpoint %s", id)
	return 0
}
