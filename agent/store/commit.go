package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit: every change is one bbolt write transaction, and each
// commit waits for the disk (fdatasync). Changes that arrive while a
// commit is on its way to the disk are applied together in the next
// transaction and made durable by one sync, so concurrent requests do not
// queue for one sync each. A lone change commits at once, as before; a
// caller returns only once its change is on disk, so the crash order of
// the engine's transitions is unchanged.

// change is one caller's part of a group commit.
type change struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// committer batches changes; the first caller to find it idle commits
// for everyone queued behind it until the queue is empty.
type committer struct {
	mu      sync.Mutex
	queue   []*change
	running bool
	commits int // transactions committed, for tests

	// beforeCommit, if set, runs before each group is committed (tests).
	beforeCommit func()
}

// apply runs fn in a write transaction, possibly shared with other
// callers, and returns fn's error or the commit's.
func (c *committer) apply(db *bolt.DB, fn func(*bolt.Tx) error) error {
	ch := &change{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, ch)
	if c.running {
		c.mu.Unlock()
		return <-ch.done
	}
	c.running = true
	for len(c.queue) > 0 {
		group := c.queue
		c.queue = nil
		c.mu.Unlock()
		if c.beforeCommit != nil {
			c.beforeCommit()
		}
		n := commitGroup(db, group)
		c.mu.Lock()
		c.commits += n
	}
	c.running = false
	c.mu.Unlock()
	return <-ch.done
}

// commitGroup applies the changes in order in one transaction. A change
// that fails is answered with its error and left out, and the rest are
// applied again without it (bbolt cannot undo part of a transaction), so
// each caller sees what it would have seen alone after the changes before
// it. It returns how many transactions it committed.
func commitGroup(db *bolt.DB, group []*change) int {
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
		return 1
	}
	return 0
}
