package nstest

import (
	"os"
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
// lowest free inode number, the old one's once it is destroyed. A
// namespace made there with a lower number is kept (open until the test
// ends) so that the next one gets a higher number. Anything else that makes a
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
	for {
		run("add", name)
		got := NetnsInode(t, path)
		if got == old {
			return
		}
		if got < old { // a lower free number: held, so that it is not given again
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
		}
		run("del", name)
		if time.Now().After(deadline) {
			t.Skipf("a namespace made again at %s got inode %d, never the old one's %d: something else took that number (tests of other packages making namespaces alongside); run this test alone", path, got, old)
		}
		time.Sleep(5 * time.Millisecond) // the old namespace may not be destroyed yet
	}
}
