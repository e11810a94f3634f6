package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestDockerHandoffUndoneAtStart: a Docker endpoint whose link dockerd
// had moved into the sandbox but not yet brought up when the agent died
// is undone by the next start ("creating", never finished), and its link
// goes with it from the sandbox, where nothing else would take it away:
// it has mvlan's alias, and its address may be handed out again. So is
// one Docker deletes in that state. The test plays dockerd on the plugin
// socket.
func TestDockerHandoffUndoneAtStart(t *testing.T) {
	sb := nstest.NewSandbox(t)
	netID := strings.Repeat("5d", 32)
	a, p := playDockerd(t, sb, netID)
	ns, ep := sb.Netns(t, "c1"), strings.Repeat("c1", 32)
	p.call("NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep, "Interface": map[string]string{}})
	src := p.call("NetworkDriver.Join", map[string]any{"NetworkID": netID, "EndpointID": ep, "SandboxKey": ns})["SrcName"]
	sb.Run(t, sb.Path, "ip", "link", "set", src, "netns", filepath.Base(ns)) // moved, not up
	a.kill()
	a.start()
	if out := sb.Run(t, ns, "ip", "-o", "link", "show"); strings.Contains(out, src) {
		t.Errorf("the undone endpoint's link is still in its sandbox:\n%s\n%s", out, a.log)
	}
	for _, e := range a.endpoints() {
		if e.ID == ep {
			t.Errorf("the endpoint Docker never finished is still there after the start: %+v", e)
		}
	}

	// Removed by Docker (DeleteEndpoint, no Leave) in the same state:
	// moved into its sandbox, not up; its link goes from there too.
	ns2, ep2 := sb.Netns(t, "c2"), strings.Repeat("c2", 32)
	p.call("NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep2, "Interface": map[string]string{}})
	src2 := p.call("NetworkDriver.Join", map[string]any{"NetworkID": netID, "EndpointID": ep2, "SandboxKey": ns2})["SrcName"]
	sb.Run(t, sb.Path, "ip", "link", "set", src2, "netns", filepath.Base(ns2))
	p.call("NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep2})
	if out := sb.Run(t, ns2, "ip", "-o", "link", "show"); strings.Contains(out, src2) {
		t.Errorf("the removed endpoint's link is still in its sandbox:\n%s\n%s", out, a.log)
	}
}

// TestDockerHandoffRmBeforeMove: `mvlan rm` of a Docker endpoint after its
// Join made the link (in the agent's namespace) and before dockerd moved
// it into the sandbox takes the link away there, by its alias: left, it
// would hold the MAC, and dockerd would move it into the container with
// an address mvlan gave back. The test plays dockerd.
func TestDockerHandoffRmBeforeMove(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	netID := strings.Repeat("5e", 32)
	a, p := playDockerd(t, sb, netID)
	ns, ep := sb.Netns(t, "c1"), strings.Repeat("c3", 32)
	p.call("NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep, "Interface": map[string]string{}})
	src := p.call("NetworkDriver.Join", map[string]any{"NetworkID": netID, "EndpointID": ep, "SandboxKey": ns})["SrcName"]
	if out := sb.Run(t, sb.Path, "ip", "-o", "link", "show"); !strings.Contains(out, src+"@") {
		t.Fatalf("Join's link %s is not in the agent's namespace:\n%s", src, out)
	}
	a.ok("rm", "-f", ep)
	if out := sb.Run(t, sb.Path, "ip", "-o", "link", "show"); strings.Contains(out, src+"@") {
		t.Errorf("rm of the joined endpoint left its link %s in the agent's namespace:\n%s\n%s", src, out, a.log)
	}
	if eps := a.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after rm: %+v", eps)
	}
}
