package link_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

func TestCreateNetns(t *testing.T) {
	nstest.RequireRoot(t)
	var b [4]byte
	rand.Read(b[:])
	name := "mvt-" + hex.EncodeToString(b[:]) + "-n"
	t.Cleanup(func() { link.DeleteNetns(name) })

	path, err := link.CreateNetns(name, "")
	if err != nil || path != link.NetnsPath(name) || path != "/run/netns/"+name {
		t.Fatalf("CreateNetns = %q, %v", path, err)
	}
	// iproute2 sees it and can run commands in it; it is a fresh namespace.
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "-o", "link").CombinedOutput(); err != nil {
		t.Fatalf("ip netns exec %s: %v: %s", name, err, out)
	} else if got := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; got != 1 || !strings.Contains(string(out), "lo:") {
		t.Errorf("new namespace has links other than lo:\n%s", out)
	}
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); !strings.Contains(string(out), name) {
		t.Errorf("ip netns list does not show %s:\n%s", name, out)
	}
	// It is usable by the rest of the package.
	if links, err := link.EndpointLinks(path); err != nil || len(links) != 1 {
		t.Errorf("EndpointLinks(%s) = %v, %v; want only lo", path, links, err)
	}
	if _, err := link.CreateNetns(name, ""); !errors.Is(err, link.ErrExists) {
		t.Errorf("second CreateNetns error = %v; want ErrExists", err)
	}
	if err := link.DeleteNetns(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists after DeleteNetns (%v)", path, err)
	}
	if err := link.DeleteNetns(name); err != nil {
		t.Errorf("DeleteNetns of a missing namespace = %v; want nil", err)
	}
}

func TestCreateNetnsBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../etc", strings.Repeat("x", 65)} {
		if _, err := link.CreateNetns(name, ""); err == nil || errors.Is(err, link.ErrExists) {
			t.Errorf("CreateNetns(%q) error = %v; want a validation error", name, err)
		}
		if err := link.DeleteNetns(name); err == nil {
			t.Errorf("DeleteNetns(%q) succeeded; want a validation error", name)
		}
	}
}

// TestCreateNetnsPropagates: a namespace made after a mount namespace was
// copied from ours (a container's, a daemon's with PrivateMounts) shows
// there too, as iproute2's do: /run/netns stays a shared mount point,
// made so once per process.
func TestCreateNetnsPropagates(t *testing.T) {
	nstest.RequireRoot(t)
	if os.Getenv("MVT_PRIVATE_MOUNTS") == "" {
		// In a mount namespace of its own where /run/netns is private,
		// whatever this host made of it: CreateNetns must make it shared.
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run", "^TestCreateNetnsPropagates$", "-test.v")
		cmd.Env = append(os.Environ(), "MVT_PRIVATE_MOUNTS=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestCreateNetnsPropagates") {
			t.Fatalf("in a private mount namespace: %v\n%s", err, out)
		}
		return
	}
	var b [4]byte
	rand.Read(b[:])
	first, second := "mvt-"+hex.EncodeToString(b[:])+"-p1", "mvt-"+hex.EncodeToString(b[:])+"-p2"
	t.Cleanup(func() { link.DeleteNetns(first); link.DeleteNetns(second) })
	if _, err := link.CreateNetns(first, ""); err != nil {
		t.Fatal(err)
	}
	copied := exec.Command("unshare", "--mount", "--propagation", "unchanged", "sleep", "30")
	if err := copied.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { copied.Process.Kill(); copied.Wait() }()
	mntns := "/proc/" + strconv.Itoa(copied.Process.Pid) + "/ns/mnt"
	for range 100 { // until unshare has switched
		if a, _ := os.Readlink(mntns); a != "" {
			if b, _ := os.Readlink("/proc/self/ns/mnt"); a != b {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := link.CreateNetns(second, ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{first, second} {
		out, err := exec.Command("nsenter", "--mount="+mntns, "stat", "-f", "-c", "%T", link.NetnsPath(name)).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != "nsfs" {
			t.Errorf("in the copied mount namespace, %s is %q (%v); want a namespace (nsfs)", link.NetnsPath(name), got, err)
		}
	}
}

// TestCheckNetnsGone: CheckNetns tells a path that is not there
// (fs.ErrNotExist) and one that holds no network namespace
// (link.ErrNotNetns: a file left where one was mounted, another kind of
// namespace) from a network namespace; callers take both as gone.
func TestCheckNetnsGone(t *testing.T) {
	left := filepath.Join(t.TempDir(), "c1")
	if err := os.WriteFile(left, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{filepath.Join(t.TempDir(), "gone"), fs.ErrNotExist},
		{left, link.ErrNotNetns},
		{"/proc/self/ns/uts", link.ErrNotNetns},
		{"/proc/self/ns/net", nil},
	} {
		ino, err := link.CheckNetns(tc.path)
		if tc.want == nil && (err != nil || ino == 0) || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckNetns(%s) = %d, %v; want %v", tc.path, ino, err, tc.want)
		}
	}
}
