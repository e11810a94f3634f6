package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
