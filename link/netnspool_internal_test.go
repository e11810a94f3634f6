package link

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestNetnsPool: once filled, Create binds a spare made ahead: a fresh
// namespace with lo up, marked before it appears at its path, one the
// host's iproute2 can use, handed out with its cookie; spares are made
// again, and Close lets them go.
func TestNetnsPool(t *testing.T) {
	nstest.RequireRoot(t)
	var b [4]byte
	rand.Read(b[:])
	base := "mvt-" + hex.EncodeToString(b[:]) + "-pool"
	p := NewNetnsPool(2, nil)
	defer p.Close()
	t.Cleanup(func() { DeleteNetns(base + "0"); DeleteNetns(base + "1") })
	spares := func() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.spare) }
	if made, err := p.Create(base+"0", "mark-0"); err != nil || made.Cookie != 0 { // none yet: made on the spot
		t.Fatalf("Create = %+v, %v; want a namespace whose cookie is not read", made, err)
	}
	waitSpares := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); spares() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d spares after 5 s, want %d", spares(), want)
			}
		}
	}
	waitSpares(2)
	made, err := p.Create(base+"1", "mark-1")
	if err != nil {
		t.Fatal(err)
	}
	path := made.Path
	if real := cookieOf(t, path); made.Cookie != real || real == 0 {
		t.Errorf("Create gave cookie %d; the namespace at %s has %d", made.Cookie, path, real)
	}
	if got := spares(); got != 1 && got != 2 {
		t.Fatalf("%d spares right after a Create from 2, want 1 (or 2 once refilled)", got)
	}
	ino0, err := CheckNetns(NetnsPath(base + "0"))
	if err != nil {
		t.Fatal(err)
	}
	ino1, err := CheckNetns(path)
	if err != nil || ino1 == ino0 {
		t.Fatalf("CheckNetns(%s) = %d, %v; want a namespace other than %d", path, ino1, err, ino0)
	}
	if mark, err := NetnsMark(path); err != nil || mark != "mark-1" {
		t.Errorf("NetnsMark(%s) = %q, %v; want mark-1", path, mark, err)
	}
	out, err := exec.Command("ip", "netns", "exec", base+"1", "ip", "-o", "link").CombinedOutput()
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
