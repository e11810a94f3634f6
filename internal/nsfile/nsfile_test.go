package nsfile

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenRefusesWithoutWaiting: paths that are not namespace files are
// refused at once, a FIFO without a writer included (opening it for
// reading would wait for one forever).
func TestOpenRefusesWithoutWaiting(t *testing.T) {
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
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want error
	}{
		{fifo, ErrNotNamespace},
		{sock, ErrNotNamespace},
		{file, ErrNotNamespace},
		{dir, ErrNotNamespace},
		{"/dev/null", ErrNotNamespace},
		{filepath.Join(dir, "missing"), os.ErrNotExist},
	} {
		start := time.Now()
		f, err := Open(tt.path)
		if f != nil {
			f.Close()
		}
		if !errors.Is(err, tt.want) || time.Since(start) > time.Second {
			t.Errorf("Open(%s) = %v after %v; want %v at once", tt.path, err, time.Since(start), tt.want)
		}
	}
}

// TestOpenNamespace: a namespace file opens, and the file is the same
// namespace the path names.
func TestOpenNamespace(t *testing.T) {
	f, err := Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got, want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/net", &want); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino || got.Ino == 0 {
		t.Fatalf("opened inode %d, path has %d", got.Ino, want.Ino)
	}
}

// TestInode: a namespace's inode, as stat tells it; anything else is
// ErrNotNamespace, a path that is not there ErrNotExist.
func TestInode(t *testing.T) {
	var want unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &want); err != nil {
		t.Fatal(err)
	}
	if got, err := Inode("/proc/self/ns/net"); err != nil || got != want.Ino || got == 0 {
		t.Errorf("Inode(/proc/self/ns/net) = %d, %v; want %d", got, err, want.Ino)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, "/proc/self/status"} {
		if got, err := Inode(p); !errors.Is(err, ErrNotNamespace) {
			t.Errorf("Inode(%s) = %d, %v; want ErrNotNamespace", p, got, err)
		}
	}
	if _, err := Inode(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Inode of a path that is not there: %v; want ErrNotExist", err)
	}
}

// TestOpenGivesUp: a lookup that does not return in time is given up
// with ErrTimeout, and its file is closed once it comes.
func TestOpenGivesUp(t *testing.T) {
	release := make(chan struct{})
	closed := make(chan struct{})
	slow := func(path string) (*os.File, error) {
		<-release
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		w.Close()
		go func() {
			// The given-up file must be closed: a read then fails.
			for {
				if _, err := r.Read(make([]byte, 1)); errors.Is(err, os.ErrClosed) {
					close(closed)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		return r, nil
	}
	start := time.Now()
	_, err := openWithin("/slow", 100*time.Millisecond, slow)
	if !errors.Is(err, ErrTimeout) || time.Since(start) > time.Second {
		t.Fatalf("openWithin = %v after %v; want ErrTimeout after ~100ms", err, time.Since(start))
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the file of a given-up open was not closed")
	}
}
