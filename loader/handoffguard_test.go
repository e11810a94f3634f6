package loader

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestHandoffGuardProgram: the guard of a link of network 1 drops what
// ep_ingress drops of router messages: from the wire, every RA and
// redirect while the network has no RA source (ra_ignore), behind an
// extension header too, then all but the source's (ra_source); a
// neighbour's RA unless its network lets it send one (ra_guard); what it
// cannot parse to the ICMPv6 type: an RA behind more extension headers
// or priority tags than it walks (unparsable). All else
// passes, uncounted, the wire mark left for ep_ingress.
func TestHandoffGuardProgram(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	guard, err := d.loadAs("handoff_guard", "handoff_guard", map[string]any{"guard_network_id": uint32(netA)})
	if err != nil {
		t.Fatal(err)
	}
	defer guard.Close()
	ra := func(src []byte, ll string) []byte {
		return ethFrame(allNodes, src, 0x86dd, ipv6Packet(ll, "ff02::1", 58, routerAdvert(llaOpt(1, src))))
	}
	redir := func(src []byte, ll string) []byte {
		return ethFrame(macA, src, 0x86dd, ipv6Packet(ll, llA, 58, redirect("fe80::fe", "2001:db8:9::1")))
	}
	dstOpts := []byte{58, 0, 1, 4, 0, 0, 0, 0} // next: ICMPv6; a PadN option
	hidden := ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 60, append(dstOpts, routerAdvert()...)))
	next, chain := extChain(7, 58, routerAdvert(llaOpt(1, macEvil)))
	deep := ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", next, chain))
	behindTags := ra(macEvil, "fe80::66")
	for range 4 {
		behindTags = tagged(behindTags, 0x8100, 0)
	}
	none := func(int) counts { return counts{} }
	run := func(cases []progCase) {
		t.Helper()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := snapshot(t, d)
				got, mark := runMark(t, guard, c.frame, WireMark)
				if got != c.verdict {
					t.Errorf("verdict %#x, want %#x", got, c.verdict)
				}
				if mark != WireMark {
					t.Errorf("mark %#x after the guard, want %#x (ep_ingress's to clear)", mark, WireMark)
				}
				expectDelta(t, d, before, c.want(len(c.frame)))
			})
		}
	}
	run([]progCase{
		{"no source: the router's ra", ra(macRouter, "fe80::1"), verdictDrop, dropA("ra_ignore")},
		{"no source: a rogue ra", ra(macEvil, "fe80::66"), verdictDrop, dropA("ra_ignore")},
		{"no source: a rogue ra behind a destination options header", hidden, verdictDrop, dropA("ra_ignore")},
		{"no source: a redirect", redir(macRouter, "fe80::1"), verdictDrop, dropA("ra_ignore")},
		{"a neighbour's ra", ra(macB, llB), verdictDrop, dropA("ra_guard")},
		{"a rogue ra behind 7 extension headers", deep, verdictDrop, dropA("unparsable")},
		{"a rogue ra behind 4 priority tags", behindTags, verdictDrop, dropA("unparsable")},
		{"the rogue host's ns", ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 58, neighborSolicit("fe80::1", llaOpt(1, macEvil)))), verdictNext, none},
		{"an echo request", ethFrame(macA, macEvil, 0x86dd, v6("2001:db8:9::1", "2001:db8:1::10")), verdictNext, none},
		{"ipv4", ethFrame(macA, macRouter, 0x0800, v4("10.2.0.12", "10.1.0.10")), verdictNext, none},
	})
	if err := d.SetRASource(netA, RASource{LL: netip.MustParseAddr("fe80::1"), MAC: macRouter}); err != nil {
		t.Fatal(err)
	}
	run([]progCase{
		{"the router's ra", ra(macRouter, "fe80::1"), verdictNext, none},
		{"the router's redirect", redir(macRouter, "fe80::1"), verdictNext, none},
		{"a rogue ra", ra(macEvil, "fe80::66"), verdictDrop, dropA("ra_source")},
		{"a rogue redirect with the router's link-local", redir(macEvil, "fe80::1"), verdictDrop, dropA("ra_source")},
	})
}

// TestHandoffGuard: a link guarded in one namespace keeps its guard when
// it moves into another (as dockerd moves a Docker endpoint's link into
// its container): an RA from its peer is dropped there as ra_ignore.
// A second link of the network is guarded by the same program (loaded
// once per network), which the datapath knows as its own. UnguardHandoff
// takes the guard off (the pin goes, the hook is empty), the next RA is
// not dropped, and a second UnguardHandoff is no error.
func TestHandoffGuard(t *testing.T) {
	requireMode(t, ModeTCX)
	sb := nstest.NewSandbox(t)
	c := sb.Netns(t, "c")
	d := newTestDatapath(t)
	sb.Run(t, sb.Path, "ip", "link", "add", "gv0", "type", "veth", "peer", "name", "gv1")
	sb.Run(t, sb.Path, "ip", "link", "set", "gv1", "up")
	const id = "c0ffee"
	if err := d.GuardHandoff(sb.Path, id, ifindex(t, sb.Path, "gv0"), netA); err != nil {
		t.Fatal(err)
	}
	sb.Run(t, sb.Path, "ip", "link", "set", "gv0", "netns", filepath.Base(c))
	sb.Run(t, c, "ip", "link", "set", "gv0", "up")
	idx := ifindex(t, c, "gv0")
	if got := hookPrograms(t, c, idx, Ingress); !slices.Equal(got, []string{"tcx:handoff_guard"}) {
		t.Fatalf("gv0's ingress in its new namespace: %v, want the guard", got)
	}
	sb.Run(t, sb.Path, "ip", "link", "add", "gw0", "type", "veth", "peer", "name", "gw1")
	const id2 = "c0ffee2"
	if err := d.GuardHandoff(sb.Path, id2, ifindex(t, sb.Path, "gw0"), netA); err != nil {
		t.Fatal(err)
	}
	one, two := runningOn(t, container{path: c, ifindex: idx}, Ingress, ModeTCX), runningOn(t, container{path: sb.Path, ifindex: ifindex(t, sb.Path, "gw0")}, Ingress, ModeTCX)
	if one == 0 || one != two {
		t.Errorf("the guards of one network's two links run programs %d and %d; want one, loaded once", one, two)
	}
	// Not ForeignPrograms itself: it sees every program of the machine,
	// and other test packages load theirs meanwhile.
	d.mu.Lock()
	known := d.ids.ours[two]
	d.mu.Unlock()
	if !known {
		t.Errorf("the guard's program %d is not among the datapath's own: ForeignPrograms takes it for foreign", two)
	}
	if err := d.UnguardHandoff(id2); err != nil {
		t.Fatal(err)
	}
	rogue := ethFrame(allNodes, macEvil, 0x86dd, ipv6Packet("fe80::66", "ff02::1", 58, routerAdvert(llaOpt(1, macEvil))))
	before := snapshot(t, d)
	sendFrames(t, sb.Path, "gv1", rogue, 3)
	expectDelta(t, d, before, counts{"drop 1 ra_ignore": Counter{Packets: 3, Bytes: 3 * uint64(len(rogue))}})

	if err := d.UnguardHandoff(id); err != nil {
		t.Fatal(err)
	}
	if got := hookPrograms(t, c, idx, Ingress); len(got) != 0 {
		t.Errorf("gv0's ingress after UnguardHandoff: %v, want nothing", got)
	}
	before = snapshot(t, d)
	sendFrames(t, sb.Path, "gv1", rogue, 1)
	expectDelta(t, d, before, counts{})
	if err := d.UnguardHandoff(id); err != nil {
		t.Errorf("a second UnguardHandoff: %v", err)
	}
	if err := d.GuardHandoff(sb.Path, "../x", 1, netA); err == nil {
		t.Error("GuardHandoff took an ID that is not hexadecimal")
	}
}
