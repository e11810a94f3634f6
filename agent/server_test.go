package agent

import (
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
)

// TestListenUnixOpenDirs: the socket's missing directories are made 0755
// under the unit's umask 0077 (0700 ones shut the socket's group out);
// one that exists is left as it is.
func TestListenUnixOpenDirs(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	base := t.TempDir()
	kept := filepath.Join(base, "kept")
	if err := os.Mkdir(kept, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := listenAPI(filepath.Join(kept, "run", "mvlan", "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for dir, want := range map[string]os.FileMode{kept: 0o700, filepath.Join(kept, "run"): 0o755, filepath.Join(kept, "run", "mvlan"): 0o755} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", dir, fi.Mode().Perm(), want)
		}
	}
}

// TestListenUnixKeepsOtherFiles: a stale socket at the path is replaced;
// a regular file or a directory there (a --socket typo naming the state
// file) is refused, naming it, and left as it was; a live socket is
// refused.
func TestListenUnixKeepsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "state.db")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, dir} {
		if _, err := listenUnix(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("listen on %s: %v; want refused naming it", p, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("%s after the refused listen: %q %v; want it kept", file, b, err)
	}
	sock := filepath.Join(dir, "mvlan.sock")
	ln, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(sock); err == nil {
		t.Error("a second listen on a live socket succeeded")
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // stale now
	ln, err = listenUnix(sock)
	if err != nil {
		t.Fatalf("listen on a stale socket: %v; want it replaced", err)
	}
	ln.Close()
}

// TestDecodeBody: an empty body and one over the limit are refused with
// what to send (and the limit); a good one decodes.
func TestDecodeBody(t *testing.T) {
	for _, tc := range []struct {
		body, says string
	}{
		{"", "empty; send one JSON object"},
		{" \n", "empty; send one JSON object"},
		{`{"name":"` + strings.Repeat("x", maxBody) + `"}`, "larger than 1048576 bytes"},
	} {
		r := httptest.NewRequest("POST", "/v1/networks", strings.NewReader(tc.body))
		var req api.NetworkCreate
		if err := decode(r, &req); engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("body of %d bytes: %v; want invalid saying %q", len(tc.body), err, tc.says)
		}
	}
	var req api.NetworkCreate
	if err := decode(httptest.NewRequest("POST", "/v1/networks", strings.NewReader(`{"name":"n"}`)), &req); err != nil || req.Name != "n" {
		t.Errorf("a good body: %+v %v", req, err)
	}
}

// TestQueryBool: a flag in the query is true, false or absent (its
// default); any other value is refused naming it, not taken for false.
func TestQueryBool(t *testing.T) {
	for _, tc := range []struct {
		query     string
		def, want bool
		err       string
	}{
		{"", false, false, ""},
		{"", true, true, ""},
		{"force=true", false, true, ""},
		{"force=false", true, false, ""},
		{"force=1", false, false, `query parameter force="1": use force=true or force=false`},
		{"force=TRUE", false, false, `force="TRUE"`},
	} {
		got, err := queryBool(httptest.NewRequest("DELETE", "/v1/endpoints/c1?"+tc.query, nil), "force", tc.def)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("?%s (default %v): %v, %v; want %v", tc.query, tc.def, got, err, tc.want)
		case tc.err != "" && (engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("?%s: %v; want invalid, %q", tc.query, err, tc.err)
		}
	}
}
