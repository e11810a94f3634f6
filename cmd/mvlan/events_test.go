package main

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/mvlan/mvlan/doctor"
	"github.com/mvlan/mvlan/internal/nstest"
)

// waitFor polls cond every 50 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestParentLinkEvents: while the agent runs, a parent that disappears is
// reported at once, and an owned one is re-created; a parent that comes
// back makes its network usable again; an owned one given someone else's
// alias is reported as not mvlan's.
func TestParentLinkEvents(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	prefix := sb.Name + "-c"
	cleanupContainers(t, prefix)
	a := newAgent(t, sb)
	a.flags = []string{"--log-level", "debug"} // "parents refreshed"
	a.start()
	a.ok("network", "create", "--subnet=172.16.90.0/24", "-o", "parent=eth1", "net1")
	id := strings.TrimSpace(a.ok("network", "create", "--subnet=10.9.0.0/24", "local"))
	hostOnly := "mvl-" + id[:11]

	oldIdx := linkIndex(t, sb.Path, "eth1")
	tagged(t, sb, a, oldIdx)
	sb.Run(t, sb.Path, "ip", "link", "del", "eth1")
	if !waitFor(3*time.Second, func() bool { return strings.Contains(a.ok("network", "ls"), "parent link eth1 is missing") }) {
		t.Fatalf("network ls does not report the missing parent:\n%s", a.ok("network", "ls"))
	}
	if _, _, code := a.mv("run", "-d", "--name", prefix+"1", "--net", "net1"); code == 0 {
		t.Fatal("run on a network whose parent is missing succeeded")
	}
	sb.AddVeth(t, "eth1")
	if !waitFor(3*time.Second, func() bool { return !strings.Contains(a.ok("network", "ls"), "missing") }) {
		t.Fatalf("network not usable again after its parent came back:\n%s", a.ok("network", "ls"))
	}
	a.ok("run", "-d", "--name", prefix+"1", "--net", "net1")
	// The datapath knows eth1 at its new index only.
	if rows := parentRows(t, a); !slices.Contains(rows, uint32(linkIndex(t, sb.Path, "eth1"))) || slices.Contains(rows, uint32(oldIdx)) {
		t.Errorf("parents rows %v after eth1 came back (was ifindex %d, now %d)", rows, oldIdx, linkIndex(t, sb.Path, "eth1"))
	}
	if got := vlanStatsLinks(t, a); slices.Contains(got, uint32(oldIdx)) {
		t.Errorf("per-VLAN counters of eth1's old ifindex %d kept after it came back: links %v", oldIdx, got)
	}
	// The same, made again while the agent is down.
	oldIdx = linkIndex(t, sb.Path, "eth1")
	tagged(t, sb, a, oldIdx)
	a.stop()
	sb.Run(t, sb.Path, "ip", "link", "del", "eth1")
	sb.AddVeth(t, "eth1")
	a.start()
	if got := vlanStatsLinks(t, a); slices.Contains(got, uint32(oldIdx)) {
		t.Errorf("per-VLAN counters of eth1's old ifindex %d kept after it came back while the agent was down: links %v", oldIdx, got)
	}

	sb.Run(t, sb.Path, "ip", "link", "del", hostOnly)
	if !waitFor(3*time.Second, func() bool { _, ok := links(t, sb)[hostOnly]; return ok }) {
		t.Fatalf("owned link %s not re-created while the agent runs\n%s", hostOnly, a.log)
	}
	// Someone else's alias on the link mvlan made: it is no longer known
	// as mvlan's (the event leaves its name, index and MAC as they were),
	// once the re-creation's own refreshes are over.
	refreshes := func() int { return strings.Count(a.log.String(), "parents refreshed") }
	for n := -1; n != refreshes(); time.Sleep(500 * time.Millisecond) {
		n = refreshes()
	}
	sb.Run(t, sb.Path, "ip", "link", "set", hostOnly, "alias", "someone-else")
	if !waitFor(3*time.Second, func() bool { return strings.Contains(a.ok("network", "ls"), "was not created by mvlan") }) {
		t.Fatalf("network ls does not report the re-aliased parent %s:\n%s", hostOnly, a.ok("network", "ls"))
	}
	if d := driftChecks(t, a); !slices.ContainsFunc(d, func(c doctor.Check) bool {
		return strings.Contains(c.Detail, "network local cannot take endpoints: parent "+hostOnly+" exists but was not created by mvlan")
	}) {
		t.Errorf("mvlan doctor does not report network local, which takes no endpoint: %+v", d)
	}
	a.ok("rm", "-f", prefix+"1")
	a.ok("network", "rm", "net1", "local")
}

// TestAttachesLeaveParentsAlone: an endpoint's link made or deleted on a
// parent sends the parent's link event (the link's MAC joins or leaves
// the parent's filter), which makes no refresh of the parents; a change
// of the parent's MAC does.
func TestAttachesLeaveParentsAlone(t *testing.T) {
	sb := nstest.NewSandbox(t)
	prefix := sb.Name + "-c"
	cleanupContainers(t, prefix)
	a := newAgent(t, sb)
	a.flags = []string{"--log-level", "debug"}
	a.start()
	a.ok("network", "create", "--subnet=172.16.91.0/24", "-o", "parent=eth0", "net1")
	refreshes := func() int { return strings.Count(a.log.String(), "parents refreshed") }
	time.Sleep(500 * time.Millisecond) // the create's own events
	before := refreshes()
	for i := range 3 {
		a.ok("run", "-d", "--name", fmt.Sprintf("%s%d", prefix, i), "--net", "net1")
	}
	for i := range 3 {
		a.ok("rm", "-f", fmt.Sprintf("%s%d", prefix, i))
	}
	time.Sleep(500 * time.Millisecond) // well past the events' settle time
	if got := refreshes(); got != before {
		t.Fatalf("parents refreshed %d times during 3 attaches and detaches; want none\n%s", got-before, a.log)
	}
	sb.Run(t, sb.Path, "ip", "link", "set", "eth0", "address", "02:42:ac:10:5b:fe")
	if !waitFor(3*time.Second, func() bool { return refreshes() > before }) {
		t.Fatalf("no refresh of the parents after eth0's MAC changed\n%s", a.log)
	}
	a.ok("network", "rm", "net1")
}

// tagged sends a VLAN 7 frame to eth1 (ifindex idx) from the wire, and
// checks that the datapath counts it under eth1's ifindex.
func tagged(t *testing.T, sb *nstest.Sandbox, a *agentProc, idx int) {
	t.Helper()
	arp := arpRequest(net.HardwareAddr{0x02, 0, 0, 0, 0x77, 1}, netip.MustParseAddr("172.16.7.1"), netip.MustParseAddr("172.16.7.2"))
	frame := slices.Concat(arp[:12], []byte{0x81, 0x00, 0x00, 0x07}, arp[12:])
	sendFrames(t, sb.WirePath, "w-eth1", frame, 1)
	// (the receiving side may take the frame from its backlog later)
	if !waitFor(2*time.Second, func() bool { return slices.Contains(vlanStatsLinks(t, a), uint32(idx)) }) {
		t.Fatalf("a VLAN 7 frame from the wire on eth1 (ifindex %d) is not counted: per-VLAN counters of links %v", idx, vlanStatsLinks(t, a))
	}
}

// vlanStatsLinks lists the ifindexes of the agent's per-VLAN counters
// (its pinned vlan_stats map).
func vlanStatsLinks(t *testing.T, a *agentProc) []uint32 {
	t.Helper()
	var links []uint32
	for _, k := range pinnedKeys[struct {
		Ifindex uint32
		VID     uint16
		_       uint16
	}](t, a, "vlan_stats") {
		if !slices.Contains(links, k.Ifindex) {
			links = append(links, k.Ifindex)
		}
	}
	return links
}

// parentRows lists the ifindexes of the agent's parents map (pinned in
// its --bpffs).
func parentRows(t *testing.T, a *agentProc) []uint32 {
	t.Helper()
	return pinnedKeys[uint32](t, a, "parents")
}

// pinnedKeys lists the keys of the agent's pinned map name.
func pinnedKeys[K any](t *testing.T, a *agentProc, name string) []K {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(a.dir, "bpf", name), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var keys []K
	var k K
	var prev any                     // nil: from the first key
	for m.NextKey(prev, &k) == nil { // ebpf.ErrKeyNotExist: no more
		keys = append(keys, k)
		prev = k
	}
	return keys
}
