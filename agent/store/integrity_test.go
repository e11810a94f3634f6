package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	goodOnce sync.Once
	goodData []byte
	goodErr  error
)

// goodState is a state directory holding the release fixture, migrated,
// with 300 endpoints added and every other one removed again: live data
// and freed pages all over the file, the freelist near its end. The file
// is made once per test binary and copied.
func goodState(t testing.TB) (dir, path string) {
	t.Helper()
	goodOnce.Do(func() { goodData, goodErr = makeGoodState(t.TempDir()) })
	if goodErr != nil {
		t.Fatal(goodErr)
	}
	dir = t.TempDir()
	path = filepath.Join(dir, FileName)
	if err := os.WriteFile(path, goodData, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

func makeGoodState(tmp string) ([]byte, error) {
	data, err := os.ReadFile(releaseFixture)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, FileName), data, 0o600); err != nil {
		return nil, err
	}
	s, err := Open(tmp)
	if err != nil {
		return nil, err
	}
	s.db.NoSync = true // speed only: the file is closed (and synced) below
	for i := range 300 {
		e := releaseEndpoints[0]
		e.ID, e.Name = NewID(), fmt.Sprintf("e%d", i)
		err = errors.Join(err, s.CreateEndpoint(e))
		if i%2 == 1 {
			err = errors.Join(err, s.DeleteEndpoint(e.ID))
		}
	}
	if err := errors.Join(err, s.db.Sync(), s.Close()); err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(tmp, FileName))
}

// metas returns the file's two meta pages and its page size; newest is
// the index of the one with the higher transaction.
func metas(t testing.TB, data []byte) (m [2]meta, newest int, pageSize int) {
	t.Helper()
	m0, err := parseMeta(data)
	if err != nil {
		t.Fatalf("meta 0 of the good file: %v", err)
	}
	m1, err := parseMeta(data[m0.pageSize:])
	if err != nil {
		t.Fatalf("meta 1 of the good file: %v", err)
	}
	if m1.txid > m0.txid {
		newest = 1
	}
	return [2]meta{m0, m1}, newest, int(m0.pageSize)
}

func garble(b []byte) {
	for i := range b {
		b[i] ^= 0x5a
	}
}

// TestCorruptStateRefused damages a good state file each way the issue
// found and opens it in a child process, so that a fault inside bbolt
// (SIGBUS on a truncated file) shows as a crashed child, not a crashed
// test binary. Each must give a *CorruptError with the right Problem and
// leave the file as it was.
func TestCorruptStateRefused(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, data []byte) []byte
		want   Problem
	}{
		{"empty", func(*testing.T, []byte) []byte { return nil }, Empty},
		{"cut inside the meta pages", func(_ *testing.T, d []byte) []byte { return d[:1000] }, Truncated},
		{"cut to the meta pages", func(t *testing.T, d []byte) []byte {
			_, _, ps := metas(t, d)
			return d[:2*ps]
		}, Truncated},
		{"cut in the middle", func(_ *testing.T, d []byte) []byte { return d[:len(d)/2] }, Truncated},
		{"last data page cut", func(t *testing.T, d []byte) []byte {
			m, n, ps := metas(t, d)
			return d[:int(m[n].hwm-1)*ps]
		}, Truncated},
		{"last data page half cut", func(t *testing.T, d []byte) []byte {
			m, n, ps := metas(t, d)
			return d[:int(m[n].hwm)*ps-ps/2]
		}, Truncated},
		{"newest meta garbled", func(t *testing.T, d []byte) []byte {
			_, n, ps := metas(t, d)
			garble(d[n*ps+16 : n*ps+80])
			return d
		}, BadMeta},
		{"newest meta's txid bumped", func(t *testing.T, d []byte) []byte {
			_, n, ps := metas(t, d)
			d[n*ps+64]++
			return d
		}, BadMeta},
		{"older meta garbled", func(t *testing.T, d []byte) []byte {
			_, n, ps := metas(t, d)
			garble(d[(1-n)*ps+16 : (1-n)*ps+80])
			return d
		}, BadMeta},
		{"both metas garbled", func(t *testing.T, d []byte) []byte {
			_, _, ps := metas(t, d)
			garble(d[16:80])
			garble(d[ps+16 : ps+80])
			return d
		}, BadMeta},
		{"freelist page overwritten", func(t *testing.T, d []byte) []byte {
			m, n, ps := metas(t, d)
			garble(d[int(m[n].freelist)*ps : int(m[n].freelist+1)*ps])
			return d
		}, Inconsistent},
		{"root page freed", func(t *testing.T, d []byte) []byte {
			m, n, ps := metas(t, d)
			fl := d[int(m[n].freelist)*ps:]
			binary.LittleEndian.PutUint16(fl[10:], 1)
			binary.LittleEndian.PutUint64(fl[16:], m[n].root)
			return d
		}, Inconsistent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := goodState(t)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			bad := tc.damage(t, data)
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			out := openInChild(t, dir)
			if want := "problem=" + tc.want.String() + "\n"; !strings.HasPrefix(out, want) {
				t.Fatalf("open: got %q, want %q", out, want)
			}
			after, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(after, bad) {
				t.Fatalf("the refused file changed (err %v)", err)
			}
		})
	}
}

// openInChild opens the state in dir in a child process (this test
// binary running TestOpenChild) and returns what it printed.
func openInChild(t *testing.T, dir string) string {
	t.Helper()
	out, err := runChild(dir)
	if err != nil {
		t.Fatalf("open in a child process: %v\n%s", err, out)
	}
	return out
}

func openInChildRaw(dir string) string {
	out, err := runChild(dir)
	if err != nil {
		return fmt.Sprintf("child: %v\n%s", err, out)
	}
	return out
}

func runChild(dir string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := []string{os.Args[0], "-test.run=^TestOpenChild$", "-test.count=1"}
	if !raceEnabled {
		// A runaway child (bbolt on garbage) must not take the machine's memory.
		args = append([]string{"prlimit", "--as=2000000000", "--"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "MVLAN_STORE_CHILD_DIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestOpenChild is the child of openInChild: it opens the state and
// prints "problem=P" and the error, or "opened".
func TestOpenChild(t *testing.T) {
	dir := os.Getenv("MVLAN_STORE_CHILD_DIR")
	if dir == "" {
		t.Skip("runs only as openInChild's child")
	}
	s, err := Open(dir)
	var ce *CorruptError
	switch {
	case err == nil:
		fmt.Println("opened")
		s.Close()
	case errors.As(err, &ce) && errors.Is(err, ErrCorrupt):
		fmt.Printf("problem=%s\n%v\n", ce.Problem, err)
	default:
		fmt.Printf("other error: %v\n", err)
	}
}

// TestGoodStateOpens is the control for TestCorruptStateRefused: the
// undamaged file opens in the child.
func TestGoodStateOpens(t *testing.T) {
	dir, _ := goodState(t)
	if out := openInChild(t, dir); out != "opened\n" && !strings.HasPrefix(out, "opened\n") {
		t.Fatalf("good state: %q", out)
	}
}
