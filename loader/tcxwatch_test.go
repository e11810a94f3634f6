package loader

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestWatchTCX: once WatchTCX runs, another process's TCX attach or
// detach moves the watch's count, by one per bpf() call (as it returns),
// with a link (BPF_LINK_CREATE) or without (BPF_PROG_ATTACH,
// BPF_PROG_DETACH), of a program loaded before; ForeignAttaches reports
// it once. A call the kernel refuses does not move it. This process's own attaches (the
// agent's) do not move it. The count is read itself: ForeignPrograms and
// the count of other processes' attaches (other tests') would not tell;
// those can only add to a move, so each is measured until it is exact.
func TestWatchTCX(t *testing.T) {
	requireMode(t, ModeTCX)
	l := newLab(t)
	d := newTestDatapath(t)
	if err := d.WatchTCX(); err != nil {
		t.Fatal(err)
	}
	prog := foreignProgram(t) // loaded now, attached later
	count := func() uint64 {
		t.Helper()
		n, err := d.watch.count()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// exactly runs act until it moves the count by want, up to 5 times:
	// other processes' TCX attaches meanwhile (other tests' agents) add to
	// the count, never take from it, so a move under want, or none exact
	// in five tries, is a failure.
	exactly := func(what string, want uint64, act func()) {
		t.Helper()
		var got []uint64
		for range 5 {
			before := count()
			act()
			n := count() - before
			if n == want {
				return
			}
			if got = append(got, n); n < want {
				break
			}
		}
		t.Errorf("%s moved the count by %v (each try); want %d", what, got, want)
	}
	exactly("the process's own TCX attach", 0, func() {
		err := nstest.In(l.c1.path, func() error {
			own, err := link.AttachTCX(link.TCXOptions{Interface: l.c1.ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return err
			}
			return own.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	d.ForeignAttaches()
	for _, c := range []struct {
		how  string
		want uint64 // 1 per call that succeeded
	}{{"link", 1}, {"prog", 2}, {"highcmd", 1}, {"refused", 0}} { // prog: attach and detach
		exactly("another process's "+c.how+" attach", c.want, func() { attachElsewhere(t, c.how, l.c1, id) })
		if d.ForeignAttaches() != (c.want > 0) {
			t.Errorf("ForeignAttaches after the %s attach: %v, want %v", c.how, !(c.want > 0), c.want > 0)
		}
	}
}

// attachElsewhere attaches program id to c's egress from another process
// (this test binary, as TestTCXAttachHelper), which detaches it and exits.
func attachElsewhere(t *testing.T, how string, c container, id ebpf.ProgramID) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTCXAttachHelper$")
	cmd.Env = append(os.Environ(), "MVLAN_TEST_TCX_ATTACH="+fmt.Sprintf("%s,%s,%d,%d", how, c.path, c.ifindex, id))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("attach from another process: %v\n%s", err, out)
	}
}

// TestTCXAttachHelper is TestWatchTCX's other process (run by
// attachElsewhere), not a test of its own.
func TestTCXAttachHelper(t *testing.T) {
	var how, path string
	var ifindex int
	var id uint32
	arg := os.Getenv("MVLAN_TEST_TCX_ATTACH")
	if arg == "" {
		t.Skip("TestWatchTCX's helper process")
	}
	if _, err := fmt.Sscanf(replaceCommas(arg), "%s %s %d %d", &how, &path, &ifindex, &id); err != nil {
		t.Fatalf("MVLAN_TEST_TCX_ATTACH=%q: %v", arg, err)
	}
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	err = nstest.In(path, func() error {
		if how == "link" {
			l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
			if err != nil {
				return err
			}
			return l.Close()
		}
		if how == "highcmd" {
			return linkCreateHighCmd(prog, ifindex)
		}
		if how == "refused" {
			return linkCreateRefused(ifindex)
		}
		opts := link.RawAttachProgramOptions{Target: ifindex, Program: prog, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()}
		if err := link.RawAttachProgram(opts); err != nil {
			return err
		}
		return link.RawDetachProgram(link.RawDetachProgramOptions{Target: ifindex, Program: prog, Attach: ebpf.AttachTCXEgress})
	})
	if err != nil {
		t.Fatalf("%s attach of program %d to ifindex %d in %s: %v", how, id, ifindex, path, err)
	}
	t.Log("attached " + how + " " + strconv.Itoa(int(id)))
}

// linkCreateHighCmd is BPF_LINK_CREATE of prog on ifindex's TCX egress
// with bits above the command's 32 set in its register, which the kernel
// does not read: a link made all the same. It closes the link.
func linkCreateHighCmd(prog *ebpf.Program, ifindex int) error {
	var attr [64]byte
	ne := binary.NativeEndian
	ne.PutUint32(attr[0:], uint32(prog.FD()))
	ne.PutUint32(attr[4:], uint32(ifindex))
	ne.PutUint32(attr[8:], uint32(ebpf.AttachTCXEgress))
	fd, _, errno := unix.Syscall(unix.SYS_BPF, 1<<32|unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
	if errno != 0 {
		return fmt.Errorf("BPF_LINK_CREATE with cmd's upper bits set: %w", errno)
	}
	return unix.Close(int(fd))
}

// linkCreateRefused calls BPF_LINK_CREATE for a TCX hook with a program
// fd that is none, in a loop: the kernel refuses each call (EBADF).
func linkCreateRefused(ifindex int) error {
	var attr [64]byte
	ne := binary.NativeEndian
	ne.PutUint32(attr[0:], ^uint32(0))
	ne.PutUint32(attr[4:], uint32(ifindex))
	ne.PutUint32(attr[8:], uint32(ebpf.AttachTCXEgress))
	for range 100 {
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_CREATE, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
		if errno != unix.EBADF {
			return fmt.Errorf("BPF_LINK_CREATE with no program: %v, want EBADF", errno)
		}
	}
	return nil
}

func replaceCommas(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == ',' {
			b[i] = ' '
		}
	}
	return string(b)
}
