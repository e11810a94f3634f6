package nsthread

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// threadNetns is the inode of the calling thread's network namespace, read
// from /proc (not through this package).
func threadNetns(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func pathIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDoPath: fn runs in the namespace at the path, and afterwards the
// goroutine's thread is back in its own.
func TestDoPath(t *testing.T) {
	nstest.RequireRoot(t)
	path := nstest.NewNetns(t, "mvt-"+fmt.Sprint(os.Getpid())+"-nsthread")
	runtime.LockOSThread() // so that "afterwards" is the same thread
	defer runtime.UnlockOSThread()
	own := threadNetns(t)
	var inside uint64
	if err := DoPath(path, func() error { inside = threadNetns(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := pathIno(t, path); inside != want {
		t.Errorf("fn ran in netns %d, want %d (%s)", inside, want, path)
	}
	if after := threadNetns(t); after != own {
		t.Errorf("thread left in netns %d after DoPath, want its own %d", after, own)
	}
	if err := DoPath("/nonexistent/netns", func() error { t.Error("fn ran"); return nil }); err == nil {
		t.Error("DoPath of a missing path succeeded")
	}
}

// TestFresh: fn runs in a new namespace, and the calling thread is still
// in its own afterwards (read from /proc for the thread, not the process:
// /proc/self is the main thread's, which may be any goroutine's).
func TestFresh(t *testing.T) {
	nstest.RequireRoot(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own := threadNetns(t)
	for i := range 20 { // the pool's threads, the main one among them, come back right
		ino, err := Fresh(context.Background(), 0, func() (uint64, error) {
			var st unix.Stat_t
			p := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Stat(p, &st); err != nil {
				return 0, fmt.Errorf("run %d: %w", i, err)
			}
			return st.Ino, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ino == own || ino == 0 {
			t.Fatalf("fn ran in netns %d, the caller's is %d: want a new one", ino, own)
		}
	}
	if after := threadNetns(t); after != own {
		t.Errorf("caller's thread moved from netns %d to %d", own, after)
	}
	// The threads Fresh used are back in the pool: whichever runs a
	// goroutine now must be in the caller's namespace.
	for i := range 50 {
		ch := make(chan uint64)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var st unix.Stat_t
			_ = unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &st)
			ch <- st.Ino
		}()
		if ino := <-ch; ino != own {
			t.Fatalf("goroutine %d ran on a thread in netns %d, want %d", i, ino, own)
		}
	}
	if got := pathIno(t, "/proc/self/ns/net"); got != own {
		t.Errorf("the main thread is in netns %d, want %d (a thread discarded in a fresh one?)", got, own)
	}
}

// TestDoCannotReturn: when the thread fn ran on cannot return to its own
// namespace, Do says so and the caller goes on in its own namespace: fn
// ran on a thread of its own, which is discarded, not on the caller's.
// A panic in fn reaches the caller, whose thread is in its own namespace
// then too.
func TestDoCannotReturn(t *testing.T) {
	nstest.RequireRoot(t)
	path := nstest.NewNetns(t, "mvt-"+fmt.Sprint(os.Getpid())+"-noreturn")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	target := netns.NsHandle(f.Fd())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	own := threadNetns(t)

	calls := 0
	setns = func(ns netns.NsHandle) error {
		if calls++; calls == 2 { // the way back
			return errors.New("refused")
		}
		return netns.Set(ns)
	}
	defer func() { setns = netns.Set }()
	var inside uint64
	err = Do(target, func() error { inside = threadNetns(t); return nil })
	if err == nil || !strings.Contains(err.Error(), "return to own netns") {
		t.Errorf("Do whose thread cannot return: %v, want the error", err)
	}
	if want := pathIno(t, path); inside != want {
		t.Errorf("fn ran in netns %d, want %d", inside, want)
	}
	if after := threadNetns(t); after != own {
		t.Fatalf("the caller's thread is in netns %d after Do, want its own %d", after, own)
	}

	setns = netns.Set
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want fn's panic", v)
			}
		}()
		_ = Do(target, func() error { panic("boom") })
	}()
	if after := threadNetns(t); after != own {
		t.Errorf("the caller's thread is in netns %d after fn panicked, want its own %d", after, own)
	}
}
