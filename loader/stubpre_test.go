package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestPrepareNetns: stubs prepared for a namespace are used by the first
// attach in that namespace and in no other; nothing of them is pinned
// until then; the socket prepared with them is in that namespace and
// goes with the attach; release after the attach leaves the stubs
// working.
func TestPrepareNetns(t *testing.T) {
	requireMode(t, ModeTC)
	sb := nstest.NewSandbox(t)
	d := loadPath(t, privateBPFFS(t), PathStub)
	nsA, nsB := sb.Netns(t, "a"), sb.Netns(t, "b")
	cookieA, cookieB := mustCookie(t, nsA), mustCookie(t, nsB)
	f, err := os.Open(nsA)
	if err != nil {
		t.Fatal(err)
	}
	release := d.PrepareNetns(f, cookieA)
	f.Close()
	d.mu.Lock()
	p := d.preloaded[cookieA]
	prepared := [2]ebpf.ProgramID{programID(p.ingress), programID(p.egress)}
	sock := p.rtnl
	d.mu.Unlock()
	if sock == nil {
		t.Fatal("no rtnetlink socket prepared")
	}
	if c, err := unix.GetsockoptUint64(int(sock.Fd()), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE); err != nil || c != cookieA {
		t.Fatalf("prepared socket is in the namespace with cookie %d (%v), want a's %d", c, err, cookieA)
	}
	if got := pinnedStubCount(t, d); got != 0 {
		t.Fatalf("%d stubs pinned after PrepareNetns, want none (a crash must leave nothing)", got)
	}
	attach := func(ns string, cookie uint64) [2]ebpf.ProgramID {
		t.Helper()
		sb.Run(t, ns, "ip", "link", "add", "e0", "type", "veth", "peer", "name", "p0")
		idx := ifindex(t, ns, "e0")
		if err := d.AttachNewEndpoint(t.Context(), ns, cookie, idx, ModeTC); err != nil {
			t.Fatal(err)
		}
		in, _ := ourFilterOn(t, ns, idx, Ingress)
		eg, _ := ourFilterOn(t, ns, idx, Egress)
		return [2]ebpf.ProgramID{ebpf.ProgramID(in), ebpf.ProgramID(eg)}
	}
	if got := attach(nsB, cookieB); got[0] == prepared[0] || got[1] == prepared[0] || got[0] == prepared[1] || got[1] == prepared[1] {
		t.Fatalf("namespace b runs %v, stubs prepared for namespace a (%v)", got, prepared)
	}
	if n := d.preparedPrograms(); n != 2 {
		t.Fatalf("%d prepared stubs after an attach elsewhere, want a's 2", n)
	}
	if got := attach(nsA, cookieA); got != prepared {
		t.Fatalf("namespace a runs %v, want its prepared stubs %v", got, prepared)
	}
	if n, pins := d.preparedPrograms(), pinnedStubCount(t, d); n != 0 || pins != 4 {
		t.Fatalf("after a's attach: %d prepared stubs, %d pinned; want 0 and 4 (a's and b's)", n, pins)
	}
	if sock.Fd() != ^uintptr(0) { // what a closed os.File says
		t.Error("the prepared socket is still open after the attach")
	}
	release() // taken: nothing to close
	d.mu.Lock()
	alive := programID(d.epProgs[cookieA].ingress) == prepared[0]
	d.mu.Unlock()
	if !alive {
		t.Error("release after the attach closed the stubs the attach took")
	}
}

// TestNetnsPoolStubs: the netns pool prepares each spare's stubs through
// PrepareNetns; spares closed unused close theirs (no program fd or
// socket left).
func TestNetnsPoolStubs(t *testing.T) {
	requireMode(t, ModeTC)
	d := loadPath(t, privateBPFFS(t), PathStub)
	before := progFDs(t)
	p := link.NewNetnsPool(2, d.PrepareNetns)
	made, err := p.Take() // starts the filling; made on the spot
	if err != nil {
		t.Fatal(err)
	}
	made.Close()
	for deadline := time.Now().Add(5 * time.Second); d.preparedPrograms() != 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d stubs prepared after 5 s, want 4 (2 spares)", d.preparedPrograms())
		}
	}
	if got := progFDs(t) - before; got != 6 {
		t.Errorf("%d program fds and sockets held with 2 spares, want 6", got)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n, got := d.preparedPrograms(), progFDs(t)-before; n != 0 || got != 0 {
		t.Errorf("after Close: %d stubs prepared, %d program fds and sockets more than before; want 0, 0", n, got)
	}
}

func mustCookie(t *testing.T, ns string) uint64 {
	t.Helper()
	c, err := NetnsCookie(ns)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pinnedStubCount is how many stubs are pinned under d's pin directory.
func pinnedStubCount(t *testing.T, d *Datapath) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.pinDir, "stubs"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(entries)
}

// progFDs is how many BPF program fds and sockets this process holds.
func progFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && (target == "anon_inode:bpf-prog" || strings.HasPrefix(target, "socket:")) {
			n++
		}
	}
	return n
}
