package store

import (
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit: every change is one bbolt write transaction, and each
// commit waits for the disk (fdatasync). Changes that arrive while a
// commit is on its way to the disk are applied together in the next
// transaction and made durable by one sync, so concurrent requests do not
// queue for one sync each. A lone change commits at once, as before; a
// caller returns only once its change is on disk, so the crash order of
// the engine's transitions is unchanged.
//
// A change that may be lost in a crash (one the next start can tell from
// the kernel, such as an endpoint's "ready" after its "creating") can be
// applied later instead: it goes with the next commit, before that
// commit's own changes, or on its own after lazyFlush, so that it costs no
// sync of its own while others commit.

// change is one caller's part of a group commit.
type change struct {
	fn   func(*bolt.Tx) error
	done chan error
	lead chan struct{} // its caller commits the next group (apply)
}

// committer batches changes. The first caller to find it idle commits
// the group of everyone queued, and hands the next group to the first
// caller queued meanwhile: each caller commits at most one group, so none
// waits for a stream of others' commits (holding its own locks).
type committer struct {
	mu      sync.Mutex
	queue   []*change
	lazy    []*change   // applied with the next group (later)
	timer   *time.Timer // flushes lazy when no group comes
	closed  bool
	running bool
	// committed, if set, runs after each group that changed the state.
	committed func()
	// txMu is held across each group's transaction; Snapshot holds it too:
	// bbolt's check of a read-only transaction is not safe while a writer
	// commits (it reports pages freed meanwhile as corruption).
	txMu    sync.Mutex
	commits int // transactions committed, for tests

	// beforeCommit, if set, runs before each group is committed (tests).
	beforeCommit func()
	// failCommit, if set, fails each group's write with its error instead
	// of committing it, as a disk error would (tests).
	failCommit func() error
	// writeFailed, if set, hears of each failed write and how many
	// deferred changes wait for the next one. Called with mu held.
	writeFailed func(err error, waiting int)
}

// lazyFlush bounds how long a change applied later waits for a commit to
// go with.
const lazyFlush = 100 * time.Millisecond

// later queues fn to be applied with the next group; its error is
// dropped (a change that may be lost may also fail: its record was
// removed meanwhile, say).
func (c *committer) later(db *bolt.DB, fn func(*bolt.Tx) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.lazy = append(c.lazy, &change{fn: fn, done: make(chan error, 1)})
	if c.timer == nil {
		c.timer = time.AfterFunc(lazyFlush, func() { _ = c.flush(db) })
	}
}

// flush commits the changes queued by later, if any, and returns once
// they are on disk (those a group under way took with it too).
func (c *committer) flush(db *bolt.DB) error {
	c.mu.Lock()
	idle := len(c.lazy) == 0 && !c.running // a running group may hold some
	c.mu.Unlock()
	if idle {
		return nil
	}
	return c.apply(db, func(*bolt.Tx) error { return nil })
}

// close refuses more changes for later and commits those queued; when it
// returns, no commit is under way (one the timer started ends first).
func (c *committer) close(db *bolt.DB) error {
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	return c.apply(db, func(*bolt.Tx) error { return nil })
}

// apply runs fn in a write transaction, possibly shared with other
// callers, and returns fn's error or the commit's.
func (c *committer) apply(db *bolt.DB, fn func(*bolt.Tx) error) error {
	ch := &change{fn: fn, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, ch)
	if c.running {
		c.mu.Unlock()
		select {
		case err := <-ch.done:
			return err
		case <-ch.lead: // still queued: it commits the next group
			c.mu.Lock()
		}
	}
	c.running = true
	c.commitNext(db)
	return <-ch.done
}

// commitNext commits the changes applied later and those queued as one
// group, then hands the lead to the first change queued meanwhile, if
// any, or leaves the committer idle. Called with mu held; it returns
// with mu released.
func (c *committer) commitNext(db *bolt.DB) {
	lazyN := len(c.lazy)
	group := append(c.lazy, c.queue...)
	c.queue, c.lazy = nil, nil
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	if c.beforeCommit != nil {
		c.beforeCommit()
	}
	c.txMu.Lock()
	n, unsaved, werr := c.commitGroup(db, group)
	c.txMu.Unlock()
	if n > 0 && c.committed != nil {
		c.committed()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commits += n
	c.requeue(db, group[:lazyN], unsaved)
	if werr != nil && c.writeFailed != nil {
		c.writeFailed(werr, len(c.lazy))
	}
	if len(c.queue) > 0 {
		c.queue[0].lead <- struct{}{}
		return
	}
	c.running = false
}

// requeue queues again for later the changes of lazy that the failed
// commit of unsaved left out (a write error: ENOSPC, EIO), so that none
// is lost while the disk recovers; their callers were answered with the
// error, nobody waits for them, and each is idempotent. Caller holds mu.
func (c *committer) requeue(db *bolt.DB, lazy, unsaved []*change) {
	var again []*change
	for _, ch := range unsaved {
		if slices.Contains(lazy, ch) {
			again = append(again, &change{fn: ch.fn, done: make(chan error, 1)})
		}
	}
	if len(again) == 0 || c.closed {
		return
	}
	c.lazy = append(again, c.lazy...)
	if c.timer == nil {
		c.timer = time.AfterFunc(lazyFlush, func() { _ = c.flush(db) })
	}
}

// commitGroup applies the changes in order in one transaction. A change
// that fails is answered with its error and left out, and the rest are
// applied again without it (bbolt cannot undo part of a transaction), so
// each caller sees what it would have seen alone after the changes before
// it. It returns how many transactions it committed, and the changes a
// failed commit left unsaved with its error.
func (c *committer) commitGroup(db *bolt.DB, group []*change) (int, []*change, error) {
	if c.failCommit != nil {
		if err := c.failCommit(); err != nil {
			for _, ch := range group {
				ch.done <- err
			}
			return 0, group, err
		}
	}
	for len(group) > 0 {
		failed, ferr := -1, error(nil)
		err := db.Update(func(tx *bolt.Tx) error {
			for i, ch := range group {
				if err := ch.fn(tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			group[failed].done <- ferr
			group = append(group[:failed:failed], group[failed+1:]...)
			continue
		}
		for _, ch := range group {
			ch.done <- err
		}
		if err != nil {
			return 0, group, err
		}
		return 1, nil, nil
	}
	return 0, nil, nil
}
