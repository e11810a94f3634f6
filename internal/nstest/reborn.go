package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NetnsInode is the inode of the namespace at path.
func NetnsInode(t testing.TB, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// rebornWait is how long RebornNetns waits for the old namespace's
// inode number to come back to it before it fails the test.
const rebornWait = 60 * time.Second

// RebornNetns deletes the namespace at /run/netns/NAME (made by NewNetns
// or Sandbox.Netns, NAME its last element) and makes a new one there
// with the old one's inode, as happens on its own when a runtime makes a
// sandbox again under the same name: the kernel gives a new namespace (of
// any kind: they share one set of numbers) the lowest free inode number,
// the old one's once it is destroyed.
//
// Other processes make namespaces meanwhile (tests of other packages,
// which go test ./... runs alongside, and their agents, dockerd, `ip
// netns exec`), and one that comes between the old namespace's end and
// the new one's making takes the number. So the number is caught rather
// than waited for: each try makes a UTS namespace (cheap, and freed as
// soon as it is left), which gets the lowest free number; a lower one than
// the old is held until the test ends, so that no later try gets it; the
// old one is let go and the network namespace made at once, on the same
// thread, microseconds later (iproute2's `ip netns add` would take a
// fork and exec, which is the gap the number was lost in before). A
// number that another process took anyway comes back when that
// namespace ends: the tries go on for up to a minute, and then t fails.
// It never skips: a test that needs a namespace made again runs, or
// fails saying why.
func RebornNetns(t testing.TB, path string) {
	t.Helper()
	name := filepath.Base(path)
	old := NetnsInode(t, path)
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", name, err, out)
	}
	start := time.Now()
	var held []int
	t.Cleanup(func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	})
	for tries := 1; ; tries++ {
		got, err := rebornOnce(path, old, &held)
		if err != nil {
			t.Fatalf("make the namespace at %s again: %v", path, err)
		}
		if got == old {
			t.Logf("namespace %s made again with inode %d after %d tries in %v", path, old, tries, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > rebornWait {
			t.Fatalf("a namespace made again at %s: %d tries in %v never got the old one's inode %d (the last got %d): another process holds that number, or the old namespace open",
				path, tries, rebornWait, old, got)
		}
		time.Sleep(time.Millisecond) // the old namespace may not be destroyed yet
	}
}

// rebornOnce is one try of RebornNetns: on a locked thread, a new UTS
// namespace takes the lowest free inode number. A lower number than old is
// held (its fd appended to held); old itself is let go and a network
// namespace made at once, then bind-mounted at path if it got old.
// It returns the number it got.
func rebornOnce(path string, old uint64, held *[]int) (got uint64, err error) {
	runtime.LockOSThread()
	self := fmt.Sprintf("/proc/self/task/%d/ns/", unix.Gettid())
	origUTS, err := unix.Open(self+"uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return 0, err
	}
	defer unix.Close(origUTS)
	origNet, err := unix.Open(self+"net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return 0, err
	}
	defer unix.Close(origNet)
	back := func(fd, kind int) error {
		if err := unix.Setns(fd, kind); err != nil {
			return fmt.Errorf("return to the test's own namespace: %w", err) // the thread stays locked and dies with the goroutine
		}
		return nil
	}
	if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
		runtime.UnlockOSThread()
		return 0, fmt.Errorf("unshare uts: %w", err)
	}
	got, err = inode(self + "uts")
	if err == nil && got < old {
		var fd int
		if fd, err = unix.Open(self+"uts", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			*held = append(*held, fd)
		}
	}
	if berr := back(origUTS, unix.CLONE_NEWUTS); berr != nil { // frees the number unless held
		return 0, berr
	}
	if err != nil || got != old {
		runtime.UnlockOSThread()
		return got, err
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return 0, fmt.Errorf("unshare net: %w", err)
	}
	got, err = inode(self + "net")
	if err == nil && got == old {
		err = bindNetns(self+"net", path)
	}
	if berr := back(origNet, unix.CLONE_NEWNET); berr != nil {
		return 0, berr
	}
	runtime.UnlockOSThread()
	return got, err
}

// bindNetns keeps the namespace at from at path, as `ip netns add` does: a
// bind mount on an empty file in /run/netns, which stays from its first
// use a shared mount of its own.
func bindNetns(from, path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return err
	}
	f.Close()
	if err := unix.Mount(from, path, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind mount %s on %s: %w", from, path, err)
	}
	return nil
}

func inode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
