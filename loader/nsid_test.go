package loader

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/nsthread"
)

// TestNetnsCookieWays: NetnsCookie of a namespace (by NS_GET_ID where the
// kernel answers it with the cookie) is what a socket opened in it says,
// for two namespaces that differ; a file of another kind of namespace is
// refused, not read as a cookie.
func TestNetnsCookieWays(t *testing.T) {
	nstest.RequireRoot(t)
	if v := kernelVersion(t); (v[0] > 6 || v[0] == 6 && v[1] >= 18) && !idIsCookie() {
		t.Errorf("kernel %d.%d: NS_GET_ID does not answer a namespace's cookie; want it to (6.18 does)", v[0], v[1])
	}
	sb := nstest.NewSandbox(t)
	seen := map[uint64]bool{}
	for _, path := range []string{sb.Path, sb.WirePath} {
		got, err := NetnsCookie(path)
		if err != nil {
			t.Fatal(err)
		}
		var want uint64
		if err := nsthread.DoPath(path, func() (err error) { want, err = cookieHere(); return err }); err != nil {
			t.Fatal(err)
		}
		if got != want || got == 0 || seen[got] {
			t.Errorf("NetnsCookie(%s) = %d; want %d, the socket's, non-zero and not another namespace's (%v)", path, got, want, seen)
		}
		seen[got] = true
	}
	if c, err := NetnsCookie("/proc/self/ns/mnt"); err == nil || !strings.Contains(err.Error(), "/proc/self/ns/mnt") {
		t.Errorf("NetnsCookie of a mount namespace = %d, %v; want an error naming it", c, err)
	}
}

// kernelVersion is the running kernel's major and minor version.
func kernelVersion(t *testing.T) [2]int {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var v [2]int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &v[0], &v[1]); err != nil {
		t.Fatalf("kernel release %q: %v", u.Release[:], err)
	}
	return v
}
