package nstest

import (
	"fmt"
	"os/exec"
	"path/filepath"
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

// RebornNetns deletes the namespace at /run/netns/NAME (made by NewNetns
// or Sandbox.Netns, NAME its last element) and makes a new one there
// with the old one's inode, as happens on its own when a runtime makes a
// sandbox again under the same name: the kernel gives a new namespace the
// lowest free inode number, the old one's once it is destroyed. A number
// below it that is free too is taken by a namespace made for that
// ("NAME-fN", deleted with the test). Anything else that makes a
// namespace meanwhile (tests of other packages running alongside) may
// take the old number first: then, after 5 s, RebornNetns skips t, which
// could not be set up.
func RebornNetns(t testing.TB, path string) {
	t.Helper()
	name := filepath.Base(path)
	old := NetnsInode(t, path)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip netns %v: %v: %s", args, err, out)
		}
	}
	run("del", name)
	deadline := time.Now().Add(5 * time.Second)
	for fill := 0; ; {
		run("add", name)
		got := NetnsInode(t, path)
		if got == old {
			return
		}
		run("del", name)
		switch {
		case time.Now().After(deadline):
			t.Skipf("a namespace made again at %s got inode %d, never the old one's %d: something else took that number (tests of other packages making namespaces alongside); run this test alone", path, got, old)
		case got < old: // a lower free number: taken for good, the next try goes higher
			NewNetns(t, fmt.Sprintf("%s-f%d", name, fill))
			fill++
		default: // the old namespace is not destroyed yet
			time.Sleep(5 * time.Millisecond)
		}
	}
}
