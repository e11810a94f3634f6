package engine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
)

// TestDecideStart: what start-up does with each kind of corrupt state.
func TestDecideStart(t *testing.T) {
	noSnap := fmt.Errorf("stat snap: %w", os.ErrNotExist)
	badSnap := &store.CorruptError{Problem: store.Truncated}
	cases := []struct {
		problem store.Problem
		snapErr error
		marked  int
		recover bool
		want    startAction
	}{
		// Without --recover: refused whenever something could be lost.
		{store.Empty, nil, 0, false, refuse},
		{store.Empty, nil, 3, false, refuse},
		{store.Empty, noSnap, 3, false, refuse},
		{store.Empty, badSnap, 0, false, refuse},
		{store.Truncated, noSnap, 0, false, refuse},
		{store.BadMeta, nil, 0, false, refuse},
		{store.Inconsistent, noSnap, 0, false, refuse},
		// An empty file, no snapshot, no marks: a first start that died.
		{store.Empty, noSnap, 0, false, startEmpty},
		// --recover: the snapshot if usable, else an empty state.
		{store.Truncated, nil, 2, true, restoreSnapshot},
		{store.Empty, nil, 0, true, restoreSnapshot},
		{store.BadMeta, noSnap, 2, true, startEmpty},
		{store.Inconsistent, badSnap, 2, true, startEmpty},
		// A missing file whose snapshot or agent-id is there: the state
		// was lost; refused, whatever else, until --recover.
		{store.Missing, nil, 0, false, refuse},
		{store.Missing, noSnap, 0, false, refuse},
		{store.Missing, nil, 2, true, restoreSnapshot},
		{store.Missing, noSnap, 0, true, startEmpty},
		// A schema key that is not a version: the records cannot be read.
		{store.BadSchema, nil, 0, false, refuse},
		{store.BadSchema, nil, 0, true, restoreSnapshot},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s/snap=%v/marked=%d/recover=%v", tc.problem, tc.snapErr, tc.marked, tc.recover)
		if got := decideStart(tc.problem, tc.snapErr, tc.marked, tc.recover); got != tc.want {
			t.Errorf("%s: got %d, want %d", name, got, tc.want)
		}
	}
}

// TestRecoveryNeededMessage: the refusal names the problem, the links at
// stake and the command, and is errors.Is store.ErrCorrupt.
func TestRecoveryNeededMessage(t *testing.T) {
	err := error(&RecoveryNeededError{
		Corrupt: &store.CorruptError{Path: "/var/lib/mvlan/mvlan.db", Problem: store.Truncated, Detail: "4096 bytes"},
		AgentID: "b25b1f56", Marked: []string{"eth0 in /run/netns/c1 (mvlan/b25b1f56/ep/1)", "b", "c", "d"},
	})
	msg := err.Error()
	for _, want := range []string{"(truncated)", "4 link(s)", "b25b1f56", "/run/netns/c1", RecoverCommand, store.SnapshotName} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not name %q", msg, want)
		}
	}
	if !errors.Is(err, store.ErrCorrupt) {
		t.Error("not errors.Is store.ErrCorrupt")
	}
}

// TestRecoverLostStateFile: a state file that is gone while its snapshot
// or agent-id is beside it (a restore or move aside interrupted) is
// refused, naming the missing file and --recover, and nothing is
// written; --recover restores the snapshot under the same agent ID, or
// without one starts empty under a new agent ID.
func TestRecoverLostStateFile(t *testing.T) {
	for _, withSnap := range []bool{true, false} {
		t.Run(fmt.Sprintf("snapshot=%v", withSnap), func(t *testing.T) {
			dir, oldID := lostState(t, withSnap)
			snapBefore, _ := os.ReadFile(filepath.Join(dir, store.SnapshotName))
			cfg := Config{StateDir: dir, HostNetns: "/proc/self/ns/net", Log: slog.New(slog.DiscardHandler)}
			_, _, err := openState(cfg)
			var rn *RecoveryNeededError
			if !errors.As(err, &rn) || rn.Corrupt.Problem != store.Missing || !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("start without the state file: %v, want a *RecoveryNeededError (missing)", err)
			}
			for _, want := range []string{store.FileName + " is missing", RecoverCommand} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, store.FileName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the refused start made a state file: %v", err)
			}
			if snap, _ := os.ReadFile(filepath.Join(dir, store.SnapshotName)); !bytes.Equal(snap, snapBefore) {
				t.Fatal("the refused start changed the snapshot")
			}
			cfg.Recover = true
			s, replaced, err := openState(cfg)
			if err != nil {
				t.Fatalf("start with --recover: %v", err)
			}
			defer s.Close()
			nets, err := s.Networks()
			if want := map[bool]int{true: 1, false: 0}[withSnap]; err != nil || len(nets) != want || !replaced {
				t.Fatalf("after --recover: %d networks (err %v), replaced %v; want %d, replaced", len(nets), err, replaced, want)
			}
			if sameID := s.AgentID() == oldID; sameID != withSnap {
				t.Fatalf("after --recover: agent %s (was %s); want the same ID only from a snapshot", s.AgentID(), oldID)
			}
		})
	}
}

// lostState is a state directory with one network whose state file (and
// snapshot unless withSnap) is removed; it returns it and the agent ID.
func lostState(t *testing.T, withSnap bool) (string, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := s.AgentID()
	err = s.CreateNetwork(api.Network{ID: store.NewID(), Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting})
	if err := errors.Join(err, s.Close(), os.Remove(filepath.Join(dir, store.FileName))); err != nil {
		t.Fatal(err)
	}
	if !withSnap {
		if err := os.Remove(filepath.Join(dir, store.SnapshotName)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, id
}
