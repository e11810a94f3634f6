package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// corruptWithSnapshot is a state directory of the release fixture with
// its snapshot (a clean Close) and the state file then emptied (corrupt);
// it returns the directory and the snapshot's bytes.
func corruptWithSnapshot(t *testing.T) (string, []byte) {
	t.Helper()
	dir := migratedState(t)
	snap, err := os.ReadFile(filepath.Join(dir, SnapshotName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, FileName), 0); err != nil {
		t.Fatal(err)
	}
	return dir, snap
}

// TestRestoreInterrupted stops RestoreSnapshot after each of its steps,
// by an error and by a crash (a child process that exits there, as kill
// -9 would stop the agent): the state file is still there (the corrupt
// one: Open refuses it rather than starting a new state), the snapshot
// is unchanged, and the next try restores the state.
func TestRestoreInterrupted(t *testing.T) {
	for _, step := range []string{"copied", "prepared", "linked"} {
		for _, crash := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/crash=%v", step, crash), func(t *testing.T) {
				dir, snap := corruptWithSnapshot(t)
				if crash {
					restoreInChild(t, dir, step)
				} else {
					restoreFailingAt(t, dir, step)
				}
				if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open after a restore stopped at %s: %v, want the corrupt file refused", step, err)
				}
				wantRestored(t, dir, snap)
			})
		}
	}
}

// restoreFailingAt runs RestoreSnapshot on dir with an error at step.
func restoreFailingAt(t *testing.T, dir, step string) {
	t.Helper()
	injected := errors.New("injected")
	restoreStep = func(s string) error {
		if s == step {
			return injected
		}
		return nil
	}
	defer func() { restoreStep = func(string) error { return nil } }()
	if _, err := RestoreSnapshot(dir); !errors.Is(err, injected) {
		t.Fatalf("restore failing at %s: %v, want the injected error", step, err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+".restore")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed restore left its copy behind: %v", err)
	}
}

// restoreInChild runs RestoreSnapshot on dir in a child process (this
// test binary running TestRestoreChild) that exits at step.
func restoreInChild(t *testing.T, dir, step string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRestoreChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MVLAN_STORE_CHILD_DIR="+dir, "MVLAN_STORE_CRASH_AT="+step)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child restoring until %s: %v, want exit 3 there\n%s", step, err, out.String())
	}
}

// TestRestoreChild is restoreInChild's child: it exits with 3 at the step
// MVLAN_STORE_CRASH_AT names, leaving what a kill there leaves.
func TestRestoreChild(t *testing.T) {
	dir, step := os.Getenv("MVLAN_STORE_CHILD_DIR"), os.Getenv("MVLAN_STORE_CRASH_AT")
	if dir == "" || step == "" {
		t.Skip("runs only as restoreInChild's child")
	}
	restoreStep = func(s string) error {
		if s == step {
			os.Exit(3)
		}
		return nil
	}
	_, err := RestoreSnapshot(dir)
	t.Fatalf("restore ran past %s: %v", step, err)
}

// wantRestored restores the snapshot in dir and checks that the state
// then opens with the fixture's agent and endpoints, and that the
// snapshot still holds snap.
func wantRestored(t *testing.T, dir string, snap []byte) {
	t.Helper()
	if got, err := os.ReadFile(filepath.Join(dir, SnapshotName)); err != nil || !bytes.Equal(got, snap) {
		t.Fatalf("the snapshot changed (err %v)", err)
	}
	if _, err := RestoreSnapshot(dir); err != nil {
		t.Fatalf("restore again: %v", err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("open after the restore: %v", err)
	}
	defer s.Close()
	eps, err := s.Endpoints()
	if err != nil || len(eps) != len(releaseEndpoints) || s.AgentID() != "b25b1f56" {
		t.Fatalf("restored state: %d endpoints (err %v), agent %s; want %d and b25b1f56", len(eps), err, s.AgentID(), len(releaseEndpoints))
	}
}

// TestRestoreRedoesLeftover: a copy an interrupted restore left behind
// (here garbage) is made again, not trusted.
func TestRestoreRedoesLeftover(t *testing.T) {
	dir, snap := corruptWithSnapshot(t)
	if err := os.WriteFile(filepath.Join(dir, FileName+".restore"), []byte("half a copy"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantRestored(t, dir, snap)
	if _, err := os.Stat(filepath.Join(dir, FileName+".restore")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the leftover copy is still there: %v", err)
	}
}

// TestOpenRefusesLostState: with the state file gone but its snapshot or
// agent-id still beside it, Open refuses (*CorruptError, Missing) and
// makes no file, leaving the snapshot and agent-id as they were;
// RestoreSnapshot then brings the state back. With neither it is a first
// start, and Options.Fresh starts afresh whatever is there.
func TestOpenRefusesLostState(t *testing.T) {
	cases := []struct {
		name   string
		keep   []string // what stays beside the removed state file
		fresh  bool
		refuse bool
	}{
		{"snapshot and agent-id", []string{SnapshotName, AgentIDFile}, false, true},
		{"snapshot alone", []string{SnapshotName}, false, true},
		{"agent-id alone", []string{AgentIDFile}, false, true},
		{"neither: a first start", nil, false, false},
		{"fresh", []string{SnapshotName, AgentIDFile}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := migratedState(t)
			before := map[string][]byte{}
			for _, name := range []string{FileName, SnapshotName, AgentIDFile} {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if name == FileName || !slices.Contains(tc.keep, name) {
					err = os.Remove(filepath.Join(dir, name))
				}
				before[name] = b
				if err != nil {
					t.Fatal(err)
				}
			}
			s, err := OpenWith(dir, Options{Fresh: tc.fresh})
			if !tc.refuse {
				if err != nil || s.AgentID() == "b25b1f56" {
					t.Fatalf("open: %v; want a new state under a new agent ID", err)
				}
				s.Close()
				return
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Problem != Missing || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.keep[0]) {
				t.Fatalf("open without the state file: %v, want a *CorruptError (missing) naming %s", err, tc.keep[0])
			}
			if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused open made a state file: %v", err)
			}
			for _, name := range tc.keep {
				if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, before[name]) {
					t.Fatalf("%s changed (err %v)", name, err)
				}
			}
			if slices.Contains(tc.keep, SnapshotName) {
				wantRestored(t, dir, before[SnapshotName])
			}
		})
	}
}
