package api

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSocketAccess: the permission hint names the socket's mode and
// owner, and its group when the group may write to it (0660: the group's
// members may use it; 0600 or 0640: only the owner); a socket that
// cannot be looked at says why.
func TestSocketAccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (gives the socket to another group)")
	}
	sock := filepath.Join(t.TempDir(), "mvlan.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const gid = 4242 // a group that need not exist: named by its number then
	group := groupName(gid)
	for _, tc := range []struct {
		mode os.FileMode
		gid  int
		says string
	}{
		{0o600, 0, "mode 0600, owner root: only root may use it; run as root, or start the agent with --socket-group GROUP"},
		{0o660, gid, "mode 0660, owner root, group " + group + ": members of group " + group + " may use it (add yourself, then log in again), or run as root"},
		{0o640, gid, "mode 0640, owner root: only root may use it"},
	} {
		if err := os.Chown(sock, 0, tc.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(sock, tc.mode); err != nil {
			t.Fatal(err)
		}
		if got := socketAccess(sock); !strings.HasPrefix(got, tc.says) {
			t.Errorf("socket %04o root:%d: %q; want it to start %q", tc.mode, tc.gid, got, tc.says)
		}
	}
	if got := socketAccess(sock + ".none"); !strings.Contains(got, "cannot look at it") || !strings.Contains(got, "no such file") {
		t.Errorf("missing socket: %q; want why it cannot be looked at", got)
	}
}
