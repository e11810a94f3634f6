package link

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestNetnsPool: Take hands out a namespace made ahead once the pool has
// filled (made on the spot before): a fresh namespace with lo up, with
// its cookie and inode, reached at its Path and named nowhere; Mount
// marks it before it appears at /run/netns/NAME, where the host's
// iproute2 can use it; a name taken is ErrExists; spares are made again,
// and Close lets them go.
func TestNetnsPool(t *testing.T) {
	nstest.RequireRoot(t)
	var b [4]byte
	rand.Read(b[:])
	base := "mvt-" + hex.EncodeToString(b[:]) + "-pool"
	p := NewNetnsPool(2, nil)
	defer p.Close()
	t.Cleanup(func() { DeleteNetns(base + "0"); DeleteNetns(base + "1") })
	spares := func() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.spare) }
	first, err := p.Take() // none yet: made on the spot
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Mount(base + "0"); err != nil {
		t.Fatal(err)
	}
	first.Close()
	waitSpares := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); spares() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d spares after 5 s, want %d", spares(), want)
			}
		}
	}
	waitSpares(2)
	s, err := p.Take()
	if err != nil {
		t.Fatal(err)
	}
	// The next is made once the spare taken is closed, not while its
	// attach runs.
	time.Sleep(100 * time.Millisecond)
	if got := spares(); got != 1 {
		t.Fatalf("%d spares while the one taken from 2 is open, want 1", got)
	}
	checkSpare(t, s)
	if s.point == nil {
		t.Errorf("the spare has no mount point made ahead (O_TMPFILE in %s)", NetnsDir)
	}
	var ahead unix.Stat_t // Ino 0: none made ahead (reported above)
	if s.point != nil {
		if err := unix.Fstat(int(s.point.Fd()), &ahead); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Mark("mark-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(base + "0"); !errors.Is(err, ErrExists) {
		t.Errorf("Mount on a name in use = %v; want ErrExists", err)
	}
	path, err := s.Mount(base + "1")
	if err != nil {
		t.Fatal(err)
	}
	if ino, err := CheckNetns(path); err != nil || ino != s.Inode() {
		t.Fatalf("CheckNetns(%s) = %d, %v; want the spare's %d", path, ino, err, s.Inode())
	}
	// The name is the mount point made ahead, linked: the file under the
	// bind is its inode (seen through the parent directory's entry).
	if ahead.Ino != 0 {
		if ino, err := inodeUnderMount(path); err != nil || ino != ahead.Ino {
			t.Errorf("the file under %s is inode %d (%v); want the mount point made ahead, %d", path, ino, err, ahead.Ino)
		}
	}
	s.Close()
	if mark, err := NetnsMark(path); err != nil || mark != "mark-1" {
		t.Errorf("NetnsMark(%s) = %q, %v; want mark-1", path, mark, err)
	}
	waitSpares(2)
	// Links made in it are born without IPv6 (an endpoint without IPv6
	// needs no write then); lo keeps ::1.
	out, err := exec.Command("ip", "netns", "exec", base+"1", "sh", "-c",
		"sysctl -n net.ipv6.conf.default.disable_ipv6; ip -6 -o addr show dev lo").CombinedOutput()
	if !s.IPv6Off() || err != nil || !strings.HasPrefix(string(out), "1\n") || !strings.Contains(string(out), "::1/128") {
		t.Errorf("spare IPv6Off %v; its default.disable_ipv6 and lo's IPv6 addresses: %v\n%s\nwant 1 and ::1", s.IPv6Off(), err, out)
	}
	out, err = exec.Command("ip", "netns", "exec", base+"1", "ip", "-o", "link").CombinedOutput()
	if err != nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "lo:") || !strings.Contains(string(out), "UP") {
		t.Errorf("ip netns exec %s ip link: %v\n%s\nwant lo alone, up", base+"1", err, out)
	}
	waitSpares(2)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := spares(); got != 0 {
		t.Errorf("%d spares after Close, want 0", got)
	}
}

// checkSpare checks s's cookie and inode against the namespace at its Path.
func checkSpare(t *testing.T, s *Spare) {
	t.Helper()
	if real := cookieOf(t, s.Path()); s.Cookie() != real || real == 0 {
		t.Errorf("spare has cookie %d; the namespace at %s has %d", s.Cookie(), s.Path(), real)
	}
	if ino, err := CheckNetns(s.Path()); err != nil || ino != s.Inode() || ino == 0 {
		t.Errorf("spare has inode %d; CheckNetns(%s) = %d, %v", s.Inode(), s.Path(), ino, err)
	}
}

// cookieOf reads the cookie of the namespace at path from inside it.
func cookieOf(t *testing.T, path string) uint64 {
	t.Helper()
	var cookie uint64
	err := nstest.In(path, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return cookie
}

// inodeUnderMount is the inode of the file path is, under whatever is
// mounted on it: seen in a private mount namespace with the mount taken off.
func inodeUnderMount(path string) (uint64, error) {
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		"umount "+path+" && stat -c %i "+path).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var ino uint64
	_, err = fmt.Sscan(string(out), &ino)
	return ino, err
}
