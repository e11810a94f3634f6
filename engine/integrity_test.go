package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
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
