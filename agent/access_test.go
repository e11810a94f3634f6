package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestShareSocket: the socket goes to a group named by its gid (one the
// static agent cannot look up, as LDAP's), 0660; a name that is no group
// and "" leave it as it was.
func TestShareSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (chown)")
	}
	for _, tc := range []struct {
		group, want string
		gid         uint32
		mode        os.FileMode
	}{
		{"4242", "4242", 4242, 0o660},
		{"mvt-no-such-group", "", 0, 0o600},
		{"", "", 0, 0o600},
	} {
		path := filepath.Join(t.TempDir(), "s.sock")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := shareSocket(path, tc.group)
		if err != nil || got != tc.want {
			t.Errorf("shareSocket(%q) = %q, %v; want %q", tc.group, got, err, tc.want)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != tc.gid || fi.Mode().Perm() != tc.mode {
			t.Errorf("shareSocket(%q): gid %d mode %v; want %d %v", tc.group, gid, fi.Mode().Perm(), tc.gid, tc.mode)
		}
	}
}
