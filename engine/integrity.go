package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/link"
)

// RecoverCommand is what an operator runs to rebuild a corrupt state.
const RecoverCommand = "mvlan agent --recover"

// RecoveryNeededError is Open's refusal of a corrupt state file while
// there is something to lose: a snapshot to recover from, or links in the
// kernel marked as an mvlan agent's that a fresh state would orphan.
type RecoveryNeededError struct {
	Corrupt  *store.CorruptError
	AgentID  string   // the snapshot's or AgentIDFile's, "" if neither says
	Snapshot error    // why the snapshot cannot be used; nil if it can
	Marked   []string // marked links found, as "NAME in NETNS (ALIAS)"
}

func (e *RecoveryNeededError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v; refusing to start", e.Corrupt)
	if len(e.Marked) > 0 {
		fmt.Fprintf(&b, ": the kernel still holds %d link(s) marked as this agent's (%s: %s), which a fresh state would orphan",
			len(e.Marked), e.AgentID, strings.Join(e.Marked[:min(3, len(e.Marked))], "; "))
	}
	kept, starts := "; the bad file is kept aside", "moves the bad file aside and starts"
	if e.Corrupt.Problem == store.Missing {
		kept, starts = "", "starts"
	}
	if e.Snapshot == nil {
		fmt.Fprintf(&b, ". Run `%s` (same --state-dir) to rebuild the state from the last good snapshot (%s) and the links the kernel holds%s",
			RecoverCommand, store.SnapshotName, kept)
	} else {
		fmt.Fprintf(&b, ". There is no usable snapshot (%v): `%s` %s with an empty state under a new agent ID, leaving the marked links alone",
			e.Snapshot, RecoverCommand, starts)
	}
	return b.String()
}

func (e *RecoveryNeededError) Unwrap() error { return e.Corrupt }

// openState opens the state in cfg.StateDir. A corrupt file is refused
// (*RecoveryNeededError) unless cfg.Recover, or unless it is an empty file
// with neither a snapshot nor marked links around: a first start that
// died before the file was written, which starts afresh. A missing file
// whose snapshot or agent-id is there (store.Missing: the state was lost)
// is refused too. With cfg.Recover the snapshot, if usable, is put in
// place of the file (a corrupt one kept aside), else a corrupt file is
// moved aside and the state starts empty; recoverEndpoints then brings
// the endpoints in from the kernel.
func openState(cfg Config) (_ *store.Store, replaced bool, err error) {
	opts := store.Options{Log: cfg.Log}
	s, err := store.OpenWith(cfg.StateDir, opts)
	var ce *store.CorruptError
	if !errors.As(err, &ce) {
		return s, false, err
	}
	id, snapErr := store.SnapshotAgentID(cfg.StateDir)
	if snapErr != nil {
		id = store.RecordedAgentID(cfg.StateDir)
	}
	var marked []string
	if id != "" { // else no agent ever wrote this state: no link can be its
		marked = markedLinks(cfg.HostNetns, id)
	}
	switch decideStart(ce.Problem, snapErr, len(marked), cfg.Recover) {
	case restoreSnapshot:
		aside, err := store.RestoreSnapshot(cfg.StateDir)
		if err != nil {
			return nil, false, fmt.Errorf("restore the snapshot: %w (the state file is left as it was, or restored; fix the cause and run `%s` again)",
				err, RecoverCommand)
		}
		cfg.Log.Warn("state restored from the last good snapshot", "bad_file", aside, "problem", ce.Problem, "agent", id)
	case startEmpty:
		if err := setAside(cfg, ce); err != nil {
			return nil, false, err
		}
		opts.Fresh = true
	default:
		return nil, false, &RecoveryNeededError{Corrupt: ce, AgentID: id, Snapshot: snapErr, Marked: marked}
	}
	s, err = store.OpenWith(cfg.StateDir, opts)
	return s, true, err
}

// setAside moves the corrupt state file aside for a start from an empty
// state; a missing one has nothing to move.
func setAside(cfg Config, ce *store.CorruptError) error {
	if ce.Problem == store.Missing {
		cfg.Log.Warn("state file missing and no usable snapshot; starting with an empty state under a new agent ID", "file", ce.Path)
		return nil
	}
	aside, err := store.MoveAside(cfg.StateDir)
	if err != nil {
		return err
	}
	cfg.Log.Warn("corrupt state moved aside; starting with an empty state", "bad_file", aside, "problem", ce.Problem)
	return nil
}

// startAction is what openState does with a corrupt state file.
type startAction uint8

const (
	refuse          startAction = iota // *RecoveryNeededError
	restoreSnapshot                    // the snapshot replaces the file
	startEmpty                         // the file is moved aside; a new state
)

// decideStart: --recover restores a usable snapshot, or without one starts
// empty; without --recover only an empty file with no snapshot and no
// marked link (nothing to lose) starts empty, everything else is refused.
func decideStart(problem store.Problem, snapErr error, marked int, recover bool) startAction {
	switch {
	case recover && snapErr == nil:
		return restoreSnapshot
	case recover || (problem == store.Empty && errors.Is(snapErr, os.ErrNotExist) && marked == 0):
		return startEmpty
	}
	return refuse
}

// markedLinks lists the links marked as agent id's ("mvlan/ID/...") in
// the host namespace and in every namespace there is a path to.
func markedLinks(hostNetns, id string) []string {
	prefix := "mvlan/" + id + "/"
	host := hostNetns
	if host == "" {
		host = "/proc/self/ns/net"
	}
	var out []string
	for _, p := range netnsPaths(host) {
		links, err := link.EndpointLinks(p)
		if err != nil {
			continue // gone meanwhile, or not ours to read
		}
		for _, l := range links {
			if strings.HasPrefix(l.Alias, prefix) {
				out = append(out, fmt.Sprintf("%s in %s (%s)", l.Name, p, l.Alias))
			}
		}
	}
	return out
}

// netnsDirs hold bind-mounted namespaces: mvlan's and iproute2's, Docker's.
var netnsDirs = []string{link.NetnsDir, "/run/docker/netns"}

// netnsPaths returns one path to each network namespace there is a path
// to (first, then the bind mounts, then the processes'), deduplicated by
// inode.
func netnsPaths(first ...string) []string {
	cands := slices.Clone(first)
	for _, d := range netnsDirs {
		m, _ := filepath.Glob(filepath.Join(d, "*"))
		slices.Sort(m)
		cands = append(cands, m...)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	cands = append(cands, procs...)
	seen := map[uint64]bool{}
	var out []string
	for _, p := range cands {
		ino, err := link.CheckNetns(p)
		if err != nil || seen[ino] {
			continue
		}
		seen[ino] = true
		out = append(out, p)
	}
	return out
}

// reportQuarantined logs the records the store took out of the state.
func (a *Engine) reportQuarantined() {
	q, err := a.store.Quarantined()
	if err != nil {
		a.log.Warn("cannot list quarantined state records", "err", err)
	}
	for _, r := range q {
		a.log.Warn("state record quarantined: it is left out of the state (kept in the file's quarantine bucket)",
			"bucket", r.Bucket, "key", r.Key, "reason", r.Reason, "since", r.At)
	}
}

// quarantineSet is the IDs of the quarantined records; unknown when they
// could not be listed, so that any record may be among them.
type quarantineSet struct {
	ids     map[string]bool
	unknown bool
}

// has reports whether id's record is, or may be, quarantined.
func (q quarantineSet) has(id string) bool { return q.unknown || q.ids[id] }

// any reports whether a record is, or may be, quarantined: the state may
// not know every network and endpoint, as when it was replaced.
func (q quarantineSet) any() bool { return q.unknown || len(q.ids) > 0 }

// quarantinedIDs are the IDs of the quarantined records: kernel objects
// marked with them are left alone. A listing that fails leaves them all
// alone (unknown), not none.
func (a *Engine) quarantinedIDs() quarantineSet {
	q, err := a.store.Quarantined()
	if err != nil {
		a.log.Warn("cannot list quarantined state records: every record is taken as possibly quarantined", "err", err)
	}
	set := quarantineSet{ids: map[string]bool{}, unknown: err != nil}
	for _, r := range q {
		set.ids[r.Key] = true
	}
	return set
}

// quarantine takes a record the engine cannot use out of the state through
// move (the store's QuarantineNetwork or QuarantineEndpoint): one bad
// record must not stop every other network.
func (a *Engine) quarantine(move func(id, reason string) error, kind, id, name string, why error) error {
	a.log.Warn("state record quarantined: left out of the state, kept in the file's quarantine bucket",
		"kind", kind, "name", name, "id", id, "reason", why)
	if err := move(id, why.Error()); err != nil {
		return fmt.Errorf("quarantine %s %s: %w", kind, name, err)
	}
	return nil
}

// quarantineDrift reports each quarantined record, for Check.
func (a *Engine) quarantineDrift() []string {
	q, err := a.store.Quarantined()
	if err != nil {
		return []string{fmt.Sprintf("cannot list quarantined state records: %v", err)}
	}
	var out []string
	for _, r := range q {
		out = append(out, fmt.Sprintf("state record %s/%s is quarantined since %s: %s", r.Bucket, r.Key, r.At.Format("2006-01-02 15:04:05"), r.Reason))
	}
	return out
}
