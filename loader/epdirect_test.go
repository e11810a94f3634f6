package loader

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/mvlan/mvlan/internal/nstest"
	mvlink "github.com/mvlan/mvlan/link"
)

func TestParseEndpointPath(t *testing.T) {
	for _, c := range []struct {
		in   string
		want EndpointPath
		ok   bool
	}{
		{"auto", PathAuto, true}, {"direct", PathDirect, true}, {"stub", PathStub, true},
		{"", 0, false}, {"Direct", 0, false}, {"stubs", 0, false},
	} {
		got, err := ParseEndpointPath(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseEndpointPath(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if c.ok && got.String() != c.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), c.in)
		}
	}
}

// TestDirectPath: under PathDirect every endpoint's hooks run the two
// shared programs themselves, in both modes: nothing is loaded or pinned
// for an endpoint or a namespace, and the programs still tell the
// endpoints apart (each one's pings pass, counted under its network;
// TestAttach checks the rest on the same lab).
func TestDirectPath(t *testing.T) {
	nstest.RequireRoot(t)
	if !HaveDirectPath() {
		t.Skip("the kernel has no bpf_cast_to_kern_ctx: only the stub path")
	}
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) {
			requireMode(t, mode)
			l := newLab(t)
			d := loadPath(t, privateBPFFS(t), PathDirect)
			if d.Path() != PathDirect {
				t.Fatalf("path %s, want direct", d.Path())
			}
			l.setup(t, d)
			l.attach(t, d, mode)
			want := map[Hook]ebpf.ProgramID{Ingress: programID(d.epIngress), Egress: programID(d.epEgress)}
			for _, c := range []container{l.c1, l.c2} {
				for hook, id := range want {
					if got := runningOn(t, c, hook, mode); got != id {
						t.Errorf("%s %s runs program %d, want the shared %d", c.path, hook, got, id)
					}
				}
			}
			if n := pinnedStubCount(t, d); n != 0 {
				t.Errorf("%d stubs pinned, want none", n)
			}
			// Exactly the 3 requests and 3 replies: the lab's neighbours
			// are permanent (no ARP) and its IPv6 is off.
			before := networkTraffic(t, d)
			ping(t, l.c1, l.c2.ip.String(), 3)
			after := networkTraffic(t, d)
			if got := after.Tx.Packets - before.Tx.Packets; got != 6 {
				t.Errorf("network %d tx moved by %d packets after 3 pings each way, want 6", netA, got)
			}
		})
	}
}

// TestNetnsPoolDirect: under PathDirect the netns pool's spares get an
// rtnetlink socket each and no program; closing the pool closes them.
func TestNetnsPoolDirect(t *testing.T) {
	requireMode(t, ModeTC)
	if !HaveDirectPath() {
		t.Skip("the kernel has no bpf_cast_to_kern_ctx: only the stub path")
	}
	d := loadPath(t, privateBPFFS(t), PathDirect)
	before := progFDs(t)
	p := mvlink.NewNetnsPool(2, d.PrepareNetns)
	made, err := p.Take() // starts the filling; made on the spot
	if err != nil {
		t.Fatal(err)
	}
	made.Close()
	for deadline := time.Now().Add(5 * time.Second); d.preparedSockets() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets prepared after 5 s, want 2 (2 spares)", d.preparedSockets())
		}
	}
	if n, got := d.preparedPrograms(), progFDs(t)-before; n != 0 || got != 2 {
		t.Errorf("%d programs prepared, %d program fds and sockets held with 2 spares; want 0 and 2", n, got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := progFDs(t) - before; got != 0 {
		t.Errorf("after Close: %d program fds and sockets more than before; want 0", got)
	}
}

// runningOn is the ID of the program our attachment runs on c's hook.
func runningOn(t *testing.T, c container, hook Hook, mode Mode) ebpf.ProgramID {
	t.Helper()
	if mode == ModeTC {
		id, _ := ourFilterOn(t, c.path, c.ifindex, hook)
		return ebpf.ProgramID(id)
	}
	var id ebpf.ProgramID
	err := nstest.In(c.path, func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: c.ifindex, Attach: tcxAttachType(hook)})
		if err == nil && len(res.Programs) == 1 {
			id = res.Programs[0].ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestStubPath runs the tests of the endpoint and parent programs and of
// their attachment again under PathStub (what kernels before 6.2 use).
func TestStubPath(t *testing.T) {
	nstest.RequireRoot(t)
	testPath = PathStub
	t.Cleanup(func() { testPath = PathAuto })
	for name, test := range map[string]func(*testing.T){
		"EndpointEgress": TestEndpointEgress, "EndpointIngress": TestEndpointIngress, "NoEndpoint": TestNoEndpoint,
		"WireMark": TestWireMark, "FirstHopGuards": TestFirstHopGuards, "Attach": TestAttach,
		"AdoptEndpoint": TestAdoptEndpoint, "PruneOrphans": TestPruneOrphans, "InspectRepair": TestInspectRepair,
		"AttachNewEndpoint": TestAttachNewEndpoint, "GoneNetns": TestGoneNetns, "SwitchMode": TestSwitchMode,
		"EastWestLeave": TestEastWestLeave, "EastWestVerdict": TestEastWestVerdict,
		"ParentIngress": TestParentIngress, "ParentEgress": TestParentEgress, "RASource": TestRASource,
		"ParentEgressTagPlace": TestParentEgressTagPlace, "PriorityTagged": TestPriorityTagged,
		"HostShimIngress": TestHostShimIngress,
	} {
		t.Run(name, test)
	}
}

// networkTraffic is network netA's endpoint counters.
func networkTraffic(t *testing.T, d *Datapath) Traffic {
	t.Helper()
	s, err := d.Counters(netA)
	if err != nil {
		t.Fatal(err)
	}
	return s.Network[netA]
}

// TestStubIntoDirect: a stub a stub-path agent attached, still running
// after a restart under PathDirect until the start re-attaches, tail-calls
// the direct programs (in ep_progs either way), which give it the same
// verdicts and counts.
func TestStubIntoDirect(t *testing.T) {
	nstest.RequireRoot(t)
	if !HaveDirectPath() {
		t.Skip("the kernel has no bpf_cast_to_kern_ctx: only the stub path")
	}
	d := loadPath(t, privateBPFFS(t), PathDirect)
	setupEndpoints(t, d)
	stub, err := d.buildStub("ep_egress", testCookie, slotEgress)
	if err != nil {
		t.Fatal(err)
	}
	defer stub.Close()
	for _, c := range []progCase{
		{"ipv4 own", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictPass, txA},
		{"ipv4 spoof", ethFrame(macRouter, macA, 0x0800, v4("10.1.0.99", "10.2.0.12")), verdictDrop, dropA("ip_spoof")},
	} {
		before := snapshot(t, d)
		if got, _ := runMark(t, stub, c.frame, 0); got != c.verdict {
			t.Errorf("%s: verdict %#x, want %#x", c.name, got, c.verdict)
		}
		expectDelta(t, d, before, c.want(len(c.frame)))
	}
}
