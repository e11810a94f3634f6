package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// SnapshotName is the last good copy of the state file, next to it: it
// is written only from a state that passed bbolt's consistency check, on
// open, at most every Options.SnapshotEvery while the state changes, and
// on a clean Close.
const SnapshotName = FileName + ".snap"

// Snapshot writes a consistent copy of the state to SnapshotName (0600),
// replacing the previous one only once the new one is complete on disk,
// and only if the state passes bbolt's consistency check.
func (s *Store) Snapshot() error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.commit.txMu.Lock() // no writer while the read transaction is checked
	defer s.commit.txMu.Unlock()
	s.dirty.Store(false)
	snap := filepath.Join(s.dir, SnapshotName)
	tmp := snap + ".tmp"
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := checkTx(tx, s.db.Path()); err != nil {
			return err
		}
		return writeFile(tmp, func(w io.Writer) error {
			_, err := tx.WriteTo(w)
			return err
		})
	})
	if err == nil {
		err = replace(tmp, snap)
	}
	if err != nil {
		s.dirty.Store(true)
		return fmt.Errorf("snapshot state: %w", errors.Join(err, removeMissingOK(tmp)))
	}
	return nil
}

// snapshotLoop snapshots a changed state at most every every until Close.
func (s *Store) snapshotLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if !s.dirty.Load() {
				continue
			}
			if err := s.Snapshot(); err != nil {
				s.log.Error("state snapshot failed; the previous one is kept", "err", err)
			}
		}
	}
}

// MoveAside renames the state file in dir to FileName.bad-TIME, keeping
// it for an inspection, and returns the new path; the next Open starts
// from no file. It fails with ErrLocked while an agent has the file open.
func MoveAside(dir string) (string, error) {
	path := filepath.Join(dir, FileName)
	f, err := lock(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	aside := asideName(path)
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("move state aside: %w", err)
	}
	return aside, syncDir(dir)
}

// asideName is the name a bad state file at path is kept under.
func asideName(path string) string {
	return fmt.Sprintf("%s.bad-%s", path, time.Now().UTC().Format("20060102T150405.000000000"))
}

// restoreStep, when a test sets it, is called after each step of
// RestoreSnapshot; its error stops the restore there.
var restoreStep = func(step string) error { return nil }

// RestoreSnapshot checks the snapshot in dir and puts a copy of it,
// without the networks' released high water (forgetHighWater), in place
// of the state file; a state file that is there is kept as
// FileName.bad-TIME (its path is returned, "" when there was none). The
// copy is made complete on disk first (FileName.restore, made again by
// each try), then the old file is hard linked aside and the copy renamed
// over it: a crash or an error at any step leaves the old file or the
// restored one at FileName, never none. The snapshot is left in place.
// It fails with ErrLocked while an agent has the state open, and with
// os.ErrNotExist when there is no snapshot.
func RestoreSnapshot(dir string) (aside string, err error) {
	snap := filepath.Join(dir, SnapshotName)
	if err := Verify(snap); err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, lerr := lock(path) // held until the restored file is in place
	if lerr != nil && !errors.Is(lerr, os.ErrNotExist) {
		return "", lerr
	}
	if f != nil {
		defer f.Close()
	}
	tmp := path + ".restore"
	defer func() {
		if err != nil {
			err = errors.Join(err, removeMissingOK(tmp))
		}
	}()
	if err := prepareRestore(snap, tmp); err != nil {
		return "", fmt.Errorf("prepare %s: %w", tmp, err)
	}
	if f != nil {
		aside = asideName(path)
		if err := os.Link(path, aside); err != nil {
			return "", fmt.Errorf("keep the old state as %s: %w", aside, err)
		}
	}
	if err := restoreStep("linked"); err != nil {
		return aside, err
	}
	if err := replace(tmp, path); err != nil {
		return aside, fmt.Errorf("put %s in place: %w", tmp, err)
	}
	return aside, nil
}

// prepareRestore writes the snapshot snap to tmp, synced, without the
// released high water.
func prepareRestore(snap, tmp string) error {
	if err := removeMissingOK(tmp); err != nil { // an interrupted try's
		return err
	}
	err := writeFile(tmp, func(w io.Writer) error {
		f, err := os.Open(snap)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err == nil {
		err = restoreStep("copied")
	}
	if err == nil {
		err = forgetHighWater(tmp)
	}
	if err == nil {
		err = restoreStep("prepared")
	}
	return err
}

// forgetHighWater drops the released high water of every network from
// the state file at path: a snapshot misses what was given back after
// it, so a restored state does not know it (see bHighWater).
func forgetHighWater(path string) error {
	db, err := openBolt(path, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bHighWater) == nil {
			return nil
		}
		return tx.DeleteBucket(bHighWater)
	})
	return errors.Join(err, db.Close())
}

// Verify checks a bbolt file as Open does (size and meta pages before
// mapping it, then bbolt's consistency check) without changing it.
func Verify(path string) error {
	if err := precheck(path); err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := openBolt(path, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		return err
	}
	return errors.Join(check(db, path), db.Close())
}

// precheck inspects the file at path, if there is one, under an exclusive
// lock so that no agent writes it meanwhile; ErrLocked if one holds it.
func precheck(path string) error {
	f, err := lock(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return inspect(f, path)
}

// lock opens path and takes the lock bbolt takes (flock), waiting up to
// lockTimeout; closing the file releases it so that bbolt can take it.
func lock(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.Close()
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
	}
	return nil, fmt.Errorf("lock %s: %w", path, err)
}

// writeFile creates path (0600) with fill's output and syncs it.
func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// replace renames tmp over path and syncs the directory.
func replace(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func removeMissingOK(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// AgentIDFile, next to the state file, repeats the agent ID it holds, so
// that a state file too damaged to read still tells whose kernel objects
// are at stake.
const AgentIDFile = "agent-id"

// recordAgentID writes AgentIDFile when it does not hold this agent's ID.
func (s *Store) recordAgentID() error {
	path := filepath.Join(s.dir, AgentIDFile)
	if cur, err := os.ReadFile(path); err == nil && string(cur) == s.agentID+"\n" {
		return nil
	}
	if err := writeFile(path+".tmp", func(w io.Writer) error {
		_, err := io.WriteString(w, s.agentID+"\n")
		return err
	}); err != nil {
		return fmt.Errorf("record agent id: %w", err)
	}
	return replace(path+".tmp", path)
}

// RecordedAgentID returns the agent ID recorded in dir's AgentIDFile, ""
// when there is none.
func RecordedAgentID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, AgentIDFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SnapshotAgentID verifies the snapshot in dir and returns the agent ID it
// holds: the owner of the kernel objects a recovery adopts.
func SnapshotAgentID(dir string) (string, error) {
	snap := filepath.Join(dir, SnapshotName)
	if err := Verify(snap); err != nil {
		return "", err
	}
	db, err := openBolt(snap, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		return "", err
	}
	var id string
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bMeta); b != nil {
			id = string(b.Get(kAgentID))
		}
		return nil
	})
	if err == nil && id == "" {
		err = fmt.Errorf("snapshot %s has no agent id", snap)
	}
	return id, errors.Join(err, db.Close())
}
