package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
)

// snapshotNetworks opens the snapshot in dir as a state of its own (a
// copy, so the snapshot is not touched) and returns its network names.
func snapshotNetworks(t testing.TB, dir string) []string {
	t.Helper()
	copyDir := stateFrom(t, filepath.Join(dir, SnapshotName))
	s, err := Open(copyDir)
	if err != nil {
		t.Fatalf("open a copy of the snapshot: %v", err)
	}
	defer s.Close()
	nets, err := s.Networks()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nets {
		names = append(names, n.Name)
	}
	return names
}

// TestSnapshotOnClose: a clean Close leaves a 0600 snapshot that passes
// Verify and holds the last change.
func TestSnapshotOnClose(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenWith(dir, Options{SnapshotEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateNetwork(api.Network{ID: NewID(), Name: "n1", Parent: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if got := snapshotNetworks(t, dir); len(got) != 0 {
		t.Fatalf("snapshot before close holds %v, want the empty state of the open", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, SnapshotName)
	st, err := os.Stat(snap)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	if err := Verify(snap); err != nil {
		t.Fatal(err)
	}
	if got := snapshotNetworks(t, dir); len(got) != 1 || got[0] != "n1" {
		t.Fatalf("snapshot after close holds %v, want [n1]", got)
	}
}

// TestSnapshotPeriodic: a change reaches the snapshot without a Close.
func TestSnapshotPeriodic(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenWith(dir, Options{SnapshotEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateNetwork(api.Network{ID: NewID(), Name: "n1", Parent: "eth0"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if got := snapshotNetworks(t, dir); len(got) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the change never reached the snapshot")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestoreSnapshot: a corrupt state is moved aside and replaced by the
// snapshot, which then opens with the state it had; while an agent holds
// the state nothing is moved.
func TestRestoreSnapshot(t *testing.T) {
	dir := stateFrom(t, releaseFixture)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreSnapshot(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore while open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of the emptied state: %v, want ErrCorrupt", err)
	}
	aside, err := RestoreSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(aside); err != nil || st.Size() != 0 {
		t.Fatalf("the bad file was not kept aside as it was: %v", err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("open after restore: %v", err)
	}
	defer s.Close()
	eps, err := s.Endpoints()
	if err != nil || len(eps) != len(releaseEndpoints) || s.AgentID() != "b25b1f56" {
		t.Fatalf("restored state: %d endpoints (err %v), agent %s; want %d and b25b1f56", len(eps), err, s.AgentID(), len(releaseEndpoints))
	}
}

// TestRestoreRefusesBadSnapshot: a damaged snapshot is not copied in.
func TestRestoreRefusesBadSnapshot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SnapshotName), make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreSnapshot(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of a zeroed snapshot: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a state file appeared: %v", err)
	}
}

// TestAgentIDRecorded: the agent ID is repeated next to the state file,
// and survives the state file's loss.
func TestAgentIDRecorded(t *testing.T) {
	dir := stateFrom(t, releaseFixture)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, FileName), 0); err != nil {
		t.Fatal(err)
	}
	if got := RecordedAgentID(dir); got != "b25b1f56" {
		t.Fatalf("recorded agent id %q, want the state's b25b1f56", got)
	}
	if got := RecordedAgentID(t.TempDir()); got != "" {
		t.Fatalf("recorded agent id of an empty dir: %q", got)
	}
}

// TestOpenSnapshotFails: a snapshot that cannot be written on open (here
// its temporary file's name is taken by a directory; a full disk alike)
// does not fail the open of a sound state: it is logged, the previous
// snapshot is kept, and a later one (here Close's) writes it.
func TestOpenSnapshotFails(t *testing.T) {
	dir := migratedState(t)
	snap := filepath.Join(dir, SnapshotName)
	before, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(snap+".tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s, err := OpenWith(dir, Options{SnapshotEvery: time.Hour, Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("open with the snapshot failing: %v, want the state opened", err)
	}
	if !strings.Contains(log.String(), "state snapshot failed") || !strings.Contains(log.String(), snap+".tmp") {
		t.Errorf("log %q does not report the failed snapshot and its file", log.String())
	}
	if got, err := os.ReadFile(snap); err != nil || !bytes.Equal(got, before) {
		t.Fatalf("the previous snapshot was not kept (err %v)", err)
	}
	if err := s.CreateNetwork(api.Network{ID: NewID(), Name: "n1", Parent: "eth1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := snapshotNetworks(t, dir); !slices.Contains(got, "n1") {
		t.Fatalf("snapshot after close holds %v, want n1 among them", got)
	}
}
