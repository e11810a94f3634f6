// Package store keeps the agent's state — networks and endpoints — in a
// bbolt file under the state directory. Nothing derivable is stored: IPAM
// pools are rebuilt from the networks and the addresses their endpoints
// hold, and an endpoint is written with its addresses in one transaction.
//
// The file holds the store's own versioned records (records.go), converted
// to and from the API's types here, at the edge. Open refuses a file it
// cannot trust (empty, truncated, a bad meta page, a failed consistency
// check) with a *CorruptError, quarantines single bad records instead of
// failing on them, and the store keeps a last good snapshot next to the
// file (snapshot.go) from which the agent's recovery rebuilds the state.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the state file inside the state directory.
const FileName = "mvlan.db"

var (
	// ErrLocked means another agent holds the state directory.
	ErrLocked = errors.New("state directory is in use by another agent")
	// ErrNotFound means no such network or endpoint.
	ErrNotFound = errors.New("not found")
	// ErrExists means the name is taken.
	ErrExists = errors.New("already exists")
)

// InUseError is returned when a network to delete still has endpoints.
type InUseError struct {
	Network   string
	Endpoints []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("network %s has active endpoints (%s); remove them first (mvlan rm -f NAME, or mvlan disconnect)",
		e.Network, strings.Join(e.Endpoints, ", "))
}

var (
	bMeta      = []byte("meta")
	bNetworks  = []byte("networks")
	bNetNames  = []byte("network-names")
	bEndpoints = []byte("endpoints")
	bEpNames   = []byte("endpoint-names")
	kAgentID   = []byte("agent-id")
)

// lockTimeout is how long Open waits for another process's lock.
const lockTimeout = 200 * time.Millisecond

// Options tune a Store; the zero value is the agent's default.
type Options struct {
	// SnapshotEvery is the most often a changed state is snapshotted
	// (default 10 s); a clean Close snapshots too.
	SnapshotEvery time.Duration
	// Log receives snapshot failures (default: discarded).
	Log *slog.Logger
	// Fresh lets OpenWith make a new state file although the snapshot or
	// AgentIDFile beside it shows that a state was kept there (a recovery
	// that starts empty); without it that is a *CorruptError (Missing).
	Fresh bool
}

// Store is the agent's state file. Safe for concurrent use.
type Store struct {
	db      *bolt.DB
	dir     string
	agentID string
	log     *slog.Logger

	commit committer   // group commit of concurrent changes (commit.go)
	dirty  atomic.Bool // changed since the last snapshot
	snapMu sync.Mutex  // one snapshot at a time
	stop   chan struct{}
	done   chan struct{}
	// atOpen are the quarantine's keys as OpenWith found them, before
	// it quarantined anything (QuarantinedAtOpen).
	atOpen map[string]bool
}

// Open opens (creating if needed) the state in dir with the default
// Options; see OpenWith.
func Open(dir string) (*Store, error) { return OpenWith(dir, Options{}) }

// OpenWith opens (creating if needed) the state in dir, locking it for
// this process. It fails with ErrLocked when another agent has it open,
// with a *CorruptError (errors.Is ErrCorrupt) when the file cannot be
// trusted or is missing while a snapshot or AgentIDFile says it should
// be there (unless o.Fresh), and with a *SchemaError when a newer mvlan
// wrote it. Older schemas are migrated; bad records are quarantined (see
// Quarantined).
func OpenWith(dir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	if err := precheck(path); err != nil {
		return nil, err
	}
	if !o.Fresh {
		if err := checkNotLost(dir, path); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, err
	}
	if err := check(db, path); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s := &Store{db: db, dir: dir, log: o.Log, stop: make(chan struct{}), done: make(chan struct{})}
	s.commit.committed = func() { s.dirty.Store(true) }
	var warned time.Time
	s.commit.writeFailed = func(err error, waiting int) { // said at most every writeWarnEvery
		if time.Since(warned) >= writeWarnEvery {
			warned = time.Now()
			s.log.Error("state write failed; changes wait for the next write", "err", err, "waiting", waiting)
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := db.Update(s.init); err != nil {
		return nil, errors.Join(fmt.Errorf("init %s: %w", path, err), db.Close())
	}
	if err := s.recordAgentID(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s.startSnapshots(o.SnapshotEvery)
	return s, nil
}

// startSnapshots snapshots the state just opened and starts the periodic
// snapshots. A failed snapshot (a full disk) does not fail the open: the
// state is sound, the previous snapshot is kept, and the loop tries again
// (the state stays marked changed).
func (s *Store) startSnapshots(every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	if err := s.Snapshot(); err != nil {
		s.log.Warn("state snapshot failed on open; the previous one is kept and the snapshot is tried again (check the state directory's disk)",
			"err", err, "every", every)
	}
	go s.snapshotLoop(every)
}

// checkNotLost refuses to make a new state file at path when the files
// an agent writes beside it are there: the state was lost, this is not a
// first start, and a new state (under a new agent ID, snapshotted over
// the last good one) would forget every network and endpoint.
func checkNotLost(dir, path string) error {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return nil // there, or not readable: bbolt says which
	}
	var traces []string
	for _, name := range []string{SnapshotName, AgentIDFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			traces = append(traces, name)
		}
	}
	if len(traces) == 0 {
		return nil
	}
	return &CorruptError{Path: path, Problem: Missing, Detail: fmt.Sprintf(
		"%s beside it show(s) that an agent kept its state here; a new state would forget every network and endpoint",
		strings.Join(traces, " and "))}
}

// writeWarnEvery bounds how often a disk that keeps refusing the state's
// writes is reported (a deferred change is tried again every lazyFlush).
const writeWarnEvery = 10 * time.Second

// openBolt opens path with bbolt, turning a fault or panic inside bbolt
// (a page the checks before did not catch) into a *CorruptError.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, &CorruptError{Path: path, Problem: Inconsistent, Detail: fmt.Sprint("bbolt: ", r)}
		}
	}()
	db, err = bolt.Open(path, 0o600, o)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

func (s *Store) init(tx *bolt.Tx) error {
	for _, b := range [][]byte{bMeta, bNetworks, bNetNames, bEndpoints, bEpNames, bQuarantine} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	if err := migrate(tx); err != nil {
		return err
	}
	s.atOpen = map[string]bool{}
	if err := tx.Bucket(bQuarantine).ForEach(func(k, _ []byte) error { s.atOpen[string(k)] = true; return nil }); err != nil {
		return err
	}
	if err := sweep(tx); err != nil {
		return err
	}
	meta := tx.Bucket(bMeta)
	if id := meta.Get(kAgentID); id != nil {
		s.agentID = string(id)
		return nil
	}
	s.agentID = NewID()[:8]
	return meta.Put(kAgentID, []byte(s.agentID))
}

// update runs fn in a write transaction (shared with concurrent changes:
// commit.go) and marks the state changed. fn may run more than once, each
// time in a fresh transaction.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	err := s.commit.apply(s.db, fn)
	if err == nil {
		s.dirty.Store(true)
	}
	return err
}

// Close snapshots a changed state, closes the file and releases its lock.
func (s *Store) Close() error {
	close(s.stop)
	<-s.done
	err := s.commit.close(s.db)
	if s.dirty.Load() {
		err = errors.Join(err, s.Snapshot())
	}
	return errors.Join(err, s.db.Close())
}

// AgentID is this state's stable identity, used to mark kernel objects
// the agent owns so that two agents never touch each other's.
func (s *Store) AgentID() string { return s.agentID }

// NewID returns a random 64-hex-digit identifier, as Docker's.
func NewID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
