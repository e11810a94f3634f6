package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConnectNeverBlocks: connect and disconnect of a path that names a
// FIFO (opening it for reading waits for a writer), a unix socket, or a
// file this test holds a write lease on (opening it waits for the lease
// break, 45 s by default) each get a clear error quickly, and the agent
// answers other requests meanwhile.
func TestConnectNeverBlocks(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	leased := filepath.Join(dir, "leased")
	f, err := os.OpenFile(leased, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Fatalf("take a write lease: %v", err)
	}
	for _, path := range []string{fifo, sock, leased} {
		for _, args := range [][]string{{"connect", "pub_net", path}, {"disconnect", "pub_net", path}} {
			type res struct {
				errs string
				code int
			}
			done := make(chan res, 1)
			start := time.Now()
			go func() {
				_, errs, code := e.a.mv(args...)
				done <- res{errs, code}
			}()
			// The agent answers while the request is on its way.
			if out := e.a.ok("network", "ls"); !strings.Contains(out, "pub_net") {
				t.Fatalf("network ls during %v: %q", args, out)
			}
			r := <-done
			if took := time.Since(start); r.code != 1 || !strings.Contains(r.errs, path+" is not a namespace") || took > 3*time.Second {
				t.Errorf("%v: exit %d after %v, stderr %q; want exit 1 and %q within 3s", args, r.code, took, r.errs, path+" is not a namespace")
			}
		}
	}
	if eps := e.ps(); len(eps) != 0 {
		t.Fatalf("refused connects left endpoints: %+v", eps)
	}
}
