package loader

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	tc "github.com/florianl/go-tc"
	"github.com/mvlan/mvlan/internal/nstest"
)

func requireMode(t *testing.T, mode Mode) {
	t.Helper()
	nstest.RequireRoot(t)
	got, err := ResolveMode(string(mode))
	if errors.Is(err, ErrNoTCX) {
		t.Skipf("attach mode %s unavailable: %v", mode, err)
	}
	if err != nil || got != mode {
		t.Fatalf("ResolveMode(%s) = %s, %v", mode, got, err)
	}
}

func TestResolveMode(t *testing.T) {
	nstest.RequireRoot(t)
	if m, err := ResolveMode("tc"); err != nil || m != ModeTC {
		t.Errorf("ResolveMode(tc) = %q, %v", m, err)
	}
	if _, err := ResolveMode("bogus"); err == nil {
		t.Error("ResolveMode(bogus) succeeded")
	}
	auto, err := ResolveMode("auto")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveMode("tcx"); (err == nil) != (auto == ModeTCX) {
		t.Errorf("auto resolved to %s but tcx gives %v", auto, err)
	}
}

// addForeign puts someone else's program on eth0's ingress: a TCX link, or
// a clsact qdisc (made with tc(8)) and a cls_bpf filter at priority 100.
func addForeign(t *testing.T, l *lab, mode Mode) {
	t.Helper()
	prog := foreignProgram(t)
	if mode == ModeTCX {
		err := nstest.In(l.sb.Path, func() error {
			fl, err := link.AttachTCX(link.TCXOptions{Interface: l.eth0, Program: prog, Attach: tcxAttachType(Ingress)})
			if err == nil {
				t.Cleanup(func() { fl.Close() })
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	l.sb.Run(t, l.sb.Path, "tc", "qdisc", "add", "dev", "eth0", "clsact")
	err := withTC(target{netns: l.sb.Path}, func(rtnl *tc.Tc) error {
		fd, flags, name := uint32(prog.FD()), uint32(bpfFlagDirect), "foreign"
		obj := filterObject(l.eth0, Ingress)
		obj.Info = 100<<16 | ethPAllNet
		obj.Attribute = tc.Attribute{Kind: "bpf", BPF: &tc.Bpf{FD: &fd, Name: &name, Flags: &flags}}
		return rtnl.Filter().Add(&obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// expectHooks checks every hook of the lab holds exactly what is expected:
// our program once (if attached) and the foreign one on eth0 ingress.
func expectHooks(t *testing.T, l *lab, mode Mode, attached bool) {
	t.Helper()
	ours := func(prog string) []string {
		if !attached {
			return nil
		}
		if mode == ModeTCX {
			return []string{"tcx:" + prog}
		}
		return []string{"tc:" + FilterNamePrefix + prog}
	}
	foreign := "tcx:foreign"
	if mode == ModeTC {
		foreign = "tc:foreign"
	}
	want := map[string][]string{
		"eth0 ingress": append(ours("parent_ingress"), foreign),
		"eth0 egress":  ours("parent_egress"),
	}
	got := map[string][]string{
		"eth0 ingress": hookPrograms(t, l.sb.Path, l.eth0, Ingress),
		"eth0 egress":  hookPrograms(t, l.sb.Path, l.eth0, Egress),
	}
	for i, c := range []container{l.c1, l.c2} {
		for _, hook := range []Hook{Ingress, Egress} {
			key := fmt.Sprintf("c%d %s", i+1, hook)
			want[key] = ours("ep_" + string(hook))
			got[key] = hookPrograms(t, c.path, c.ifindex, hook)
		}
	}
	for k := range want {
		slices.Sort(want[k])
		slices.Sort(got[k])
		if !slices.Equal(got[k], want[k]) {
			t.Errorf("%s holds %q, want %q", k, got[k], want[k])
		}
	}
}

func echoes(n int) Counter { return Counter{Packets: uint64(n), Bytes: uint64(n * echoFrameLen)} }

func TestAttach(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) { testAttach(t, mode) })
	}
}

func testAttach(t *testing.T, mode Mode) {
	requireMode(t, mode)
	l := newLab(t)
	pinDir := privateBPFFS(t)
	addForeign(t, l, mode)
	d, err := Load(context.Background(), pinDir, testPath)
	if err != nil {
		t.Fatal(err)
	}
	l.setup(t, d)
	l.attach(t, d, mode)
	l.attach(t, d, mode) // again: replaces, never duplicates
	expectHooks(t, l, mode, true)
	expectAttachments(t, d, mode, 6)

	before := snapshot(t, d)
	// Bridge mode: macvlan forwards slave-to-slave frames through the
	// parent's receive path (dev_forward_skb), so eth0's ingress sees them.
	ping(t, l.c1, "10.1.0.11", 3)
	ping(t, l.c1, "10.1.0.1", 2) // out of eth0 to the wire and back
	vlan := fmt.Sprintf("vlan %d/0 ", l.eth0)
	expectDelta(t, d, before, counts{
		"net 1 tx": echoes(3 + 3 + 2), "net 1 rx": echoes(3 + 3 + 2),
		vlan + "tx": echoes(2), vlan + "rx": echoes(3 + 3 + 2), "eastwest 1/0": echoes(3 + 3),
	})

	// Agent restart: counters survive, re-attaching adds nothing.
	saved := snapshot(t, d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = loadAt(t, pinDir)
	if got := snapshot(t, d); !maps.Equal(got, saved) {
		t.Errorf("counters after restart:%s\nbefore:%s", got, saved)
	}
	l.attach(t, d, mode)
	expectHooks(t, l, mode, true)
	before = snapshot(t, d)
	ping(t, l.c2, "10.1.0.1", 2)
	expectDelta(t, d, before, counts{
		"net 1 tx": echoes(2), "net 1 rx": echoes(2), vlan + "tx": echoes(2), vlan + "rx": echoes(2),
	})

	testSpoofBlocked(t, l, d)
	testNoEndpoint(t, l, d)
	testDetach(t, l, d, mode, pinDir)
}

// testSpoofBlocked: frames c1 sends with a foreign source IP or MAC never
// reach the wire, and each drop counts once.
func testSpoofBlocked(t *testing.T, l *lab, d *Datapath) {
	capture := nstest.NewCapture(t, l.sb.WirePath, "wire0")
	before := snapshot(t, d)
	spoofIP := ethFrame(wireMAC, macA, 0x0800, ipv4Packet("10.1.0.99", "10.1.0.1", 1, icmpEcho(8, 17)))
	spoofMAC := ethFrame(wireMAC, macEvil, 0x0800, ipv4Packet("10.1.0.10", "10.1.0.1", 1, icmpEcho(8, 17)))
	sendFrames(t, l.c1.path, "eth0", spoofIP, 2)
	sendFrames(t, l.c1.path, "eth0", spoofMAC, 1)
	expectDelta(t, d, before, counts{
		"drop 1 ip_spoof":  {Packets: 2, Bytes: uint64(2 * len(spoofIP))},
		"drop 1 mac_spoof": one(len(spoofMAC)),
	})
	_, err := capture.Wait(300*time.Millisecond, func(f []byte) bool {
		return len(f) >= 34 && (f[29] == 99 || f[11] == macEvil[5])
	})
	if err == nil {
		t.Error("a spoofed frame reached the wire")
	}
	ping(t, l.c1, "10.1.0.1", 1) // legitimate traffic still flows
}

// testNoEndpoint: with c1's table entry gone and its link still up (what
// removal never lets happen: the link goes first), c1's programs drop what
// it sends and what it is sent, each counted once as no_endpoint.
func testNoEndpoint(t *testing.T, l *lab, d *Datapath) {
	cookie, err := NetnsCookie(l.c1.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(cookie, l.c1.ifindex); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, d)
	if err := nstest.Ping(l.c1.path, netip.MustParseAddr("10.1.0.1"), 1, 300*time.Millisecond); err == nil {
		t.Error("c1 without its table entry reached the wire")
	}
	expectDelta(t, d, before, counts{"drop 0 no_endpoint": echoes(1)})
	before = snapshot(t, d)
	if err := nstest.Ping(l.c2.path, netip.MustParseAddr("10.1.0.10"), 1, 300*time.Millisecond); err == nil {
		t.Error("c2 reached c1 without its table entry")
	}
	if got := snapshot(t, d)["drop 0 no_endpoint"].Packets - before["drop 0 no_endpoint"].Packets; got != 1 {
		t.Errorf("c2's echo to c1 counted %d times as no_endpoint, want 1", got)
	}
	l.setup(t, d)
	ping(t, l.c1, "10.1.0.1", 1)
}

// testDetach: detaching leaves the foreign program (and, in tc mode, the
// clsact qdisc we did not create) and removes ours, pins included.
func testDetach(t *testing.T, l *lab, d *Datapath, mode Mode, pinDir string) {
	ctx := t.Context()
	for _, c := range []container{l.c1, l.c2} {
		if err := d.DetachEndpoint(ctx, c.path, c.ifindex); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.DetachParent(ctx, l.sb.Path, l.eth0); err != nil {
		t.Fatal(err)
	}
	expectHooks(t, l, mode, false)
	if n := linkPins(pinDir); n != 0 {
		t.Errorf("%d link pins left after detach", n)
	}
	if len(d.Attachments()) != 0 {
		t.Errorf("attachments after detach: %+v", d.Attachments())
	}
	if mode == ModeTC {
		if out := l.sb.Run(t, l.sb.Path, "tc", "qdisc", "show", "dev", "eth0"); !containsWord(out, "clsact") {
			t.Errorf("the foreign clsact qdisc on eth0 is gone: %s", out)
		}
	}
}

func containsWord(s, w string) bool {
	return len(s) > 0 && slices.Contains(splitFields(s), w)
}

func splitFields(s string) []string {
	var out []string
	word := ""
	for _, r := range s + " " {
		if r == ' ' || r == '\n' || r == '\t' {
			if word != "" {
				out = append(out, word)
			}
			word = ""
			continue
		}
		word += string(r)
	}
	return out
}

// TestGoneNetns: when a container's netns is deleted, DetachEndpoint still
// succeeds and removes our pins, and PruneLinks removes those of a netns
// deleted without a detach (as while the agent was down).
func TestGoneNetns(t *testing.T) {
	requireMode(t, ModeTCX)
	l := newLab(t)
	pinDir := privateBPFFS(t)
	d := loadAt(t, pinDir)
	l.setup(t, d)
	l.attach(t, d, ModeTCX)
	pins := func() int { return linkPins(pinDir) }
	if n := pins(); n != 6 {
		t.Fatalf("%d link pins, want 6", n)
	}
	for _, c := range []container{l.c1, l.c2} {
		l.sb.Run(t, l.sb.Path, "ip", "netns", "del", filepath.Base(c.path))
	}
	if err := d.DetachEndpoint(t.Context(), l.c1.path, l.c1.ifindex); err != nil {
		t.Fatalf("detach from a deleted netns: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pins() > 2 && time.Now().Before(deadline) { // the kernel tears the netns down asynchronously
		if _, err := d.PruneLinks(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := pins(); n != 2 {
		t.Errorf("%d link pins left, want the parent's 2", n)
	}
	if got := d.Attachments(); len(got) != 4 {
		t.Errorf("%d attachments, want 4 (eth0 and c2's until detached): %+v", len(got), got)
	}
}

// TestForgetEndpoint: forgetting an endpoint whose link is still there
// (its remover could not find it to delete it, or the kernel is still
// destroying its namespace) leaves its programs on it, with their TCX
// pins and records; once the link is gone, ForgetLingering drops those.
func TestForgetEndpoint(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) {
			requireMode(t, mode)
			l := newLab(t)
			pinDir := privateBPFFS(t)
			addForeign(t, l, mode)
			d := loadAt(t, pinDir)
			l.setup(t, d)
			l.attach(t, d, mode)
			cookie, err := NetnsCookie(l.c1.path)
			if err != nil {
				t.Fatal(err)
			}
			pins := func() int { return linkPins(pinDir) }
			before := pins()
			if err := d.ForgetEndpoint(cookie, l.c1.ifindex); err != nil {
				t.Fatal(err)
			}
			expectHooks(t, l, mode, true)
			if n := pins(); n != before {
				t.Errorf("%d link pins after forgetting a live link, want %d", n, before)
			}
			wantRecords := 6
			if mode == ModeTC {
				wantRecords = 4 // tc filters hold their programs themselves
			}
			expectAttachments(t, d, mode, wantRecords)

			if n, err := d.ForgetLingering(); n != 0 || err != nil {
				t.Fatalf("ForgetLingering with c1's link alive = %d, %v; want 0, nil", n, err)
			}
			l.sb.Run(t, l.c1.path, "ip", "link", "del", "eth0")
			n, err := d.ForgetLingering()
			if want := map[Mode]int{ModeTCX: 2, ModeTC: 0}[mode]; n != want || err != nil {
				t.Fatalf("ForgetLingering once c1's link is gone = %d, %v; want %d, nil", n, err, want)
			}
			if n, want := pins(), map[Mode]int{ModeTCX: 4, ModeTC: 0}[mode]; n != want {
				t.Errorf("%d link pins once c1's link is gone, want %d (eth0's and c2's)", n, want)
			}
			expectAttachments(t, d, mode, 4)
		})
	}
}

// linkPins counts the TCX link pins under pinDir.
func linkPins(pinDir string) int {
	entries, _ := os.ReadDir(filepath.Join(pinDir, "links"))
	return len(entries)
}

func expectAttachments(t *testing.T, d *Datapath, mode Mode, n int) {
	t.Helper()
	got := d.Attachments()
	if len(got) != n {
		t.Fatalf("%d attachments, want %d: %+v", len(got), n, got)
	}
	for _, a := range got {
		if a.Mode != mode || a.NetnsCookie == 0 || (a.Hook != Ingress && a.Hook != Egress) {
			t.Errorf("attachment %+v: want mode %s, a cookie and a hook", a, mode)
		}
	}
}

// TestVLANMetadata covers the tag taken from skb metadata: tagged frames
// sent with a packet socket into wire0 arrive at eth0's TC ingress with
// vlan_present set and the tag out of the frame (4 bytes shorter), and count
// under their VLAN on a trunk (no parents entry). Frames too short for
// BPF_PROG_TEST_RUN (an Ethernet header and 5 bytes of IPv4) pass and count
// as malformed.
func TestVLANMetadata(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) {
			requireMode(t, mode)
			l := newLab(t)
			d := loadAt(t, privateBPFFS(t))
			if err := d.AttachParent(t.Context(), l.sb.Path, l.eth0, mode); err != nil {
				t.Fatal(err)
			}
			untagged := sizedFrame(100)
			tagged50 := tagged(untagged, 0x8100, 50)
			tagged4094 := tagged(untagged, 0x8100, 4094)
			short := ethFrame(macA, wireMAC, 0x0800, []byte{0x45, 0, 0, 20, 0})
			before := snapshot(t, d)
			sendFrames(t, l.sb.WirePath, "wire0", tagged50, 3)
			sendFrames(t, l.sb.WirePath, "wire0", tagged4094, 1)
			sendFrames(t, l.sb.WirePath, "wire0", short, 2)
			vlan := func(vid int) string { return fmt.Sprintf("vlan %d/%d rx", l.eth0, vid) }
			expectDelta(t, d, before, counts{
				vlan(50):                   {Packets: 3, Bytes: 3 * uint64(len(untagged))},
				vlan(4094):                 one(len(untagged)),
				vlan(0):                    {Packets: 2, Bytes: 2 * uint64(len(short))},
				"malformed parent_ingress": {Packets: 2, Bytes: 2 * uint64(len(short))},
			})
		})
	}
}

// TestSwitchMode: attaching in the other mode replaces our programs; the
// hooks never hold both.
func TestSwitchMode(t *testing.T) {
	requireMode(t, ModeTCX)
	l := newLab(t)
	d := loadAt(t, privateBPFFS(t))
	l.setup(t, d)
	addForeign(t, l, ModeTC)
	for _, mode := range []Mode{ModeTCX, ModeTC, ModeTCX} {
		l.attach(t, d, mode)
		got := hookPrograms(t, l.sb.Path, l.eth0, Ingress)
		slices.Sort(got)
		want := []string{"tc:foreign", "tc:mvlan:parent_ingress"}
		if mode == ModeTCX {
			want = []string{"tc:foreign", "tcx:parent_ingress"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("after attaching in %s mode eth0 ingress holds %q, want %q", mode, got, want)
		}
		expectAttachments(t, d, mode, 6)
	}
}
