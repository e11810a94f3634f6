package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
)

// An intent is the record of an attach to a namespace mvlan does not own
// (connect, CNI ADD) while its durable commit runs alongside the link
// being made: a file in the state directory's intents/, written before
// the link and removed once the record is on disk, or the attach undone
// (an undo that fails leaves it, for the next start to finish).
//
// It is written without fsync on purpose. What it guards is a link in a
// namespace, which dies with the host; a file in the page cache outlives
// the agent's process. So a crash of the agent between the link and the
// commit leaves the intent, and the next start undoes the link it names
// (settleIntents) before any address is handed out again; a crash of the
// host takes the link with it, whatever became of the file.
//
// For a namespace mvlan makes, no intent is needed: it has no name until
// the record is on disk (nameWhenStored), so a crash takes it down.

// intentDir is where the intents live.
func (a *Engine) intentDir() string { return filepath.Join(a.cfg.StateDir, "intents") }

// writeIntent records e as about to be attached; done removes the
// record. An error leaves nothing.
func (a *Engine) writeIntent(e endpoint) (done func() error, err error) {
	b, err := json.Marshal(e.api())
	if err != nil {
		return nil, fmt.Errorf("intent of %s: %w", e.Name, err)
	}
	path := filepath.Join(a.intentDir(), e.ID)
	err = os.WriteFile(path, b, 0o600)
	if errors.Is(err, fs.ErrNotExist) { // the state directory's first
		if err = os.MkdirAll(a.intentDir(), 0o700); err == nil {
			err = os.WriteFile(path, b, 0o600)
		}
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("intent of %s: %w", e.Name, err)
	}
	return func() error {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("intent of %s: %w", e.Name, err)
		}
		return nil
	}, nil
}

// settleIntents, on start, after loadState: an intent whose endpoint is
// stored is done with (the record covers it, reconcile settles it); one
// whose endpoint is not is an attach the agent died in before its
// commit, undone here: its link goes (ours by its alias, or half made by
// its name and MAC), and with it its hooks; its table entry and pins are
// pruned later in Start with every other unknown one. An intent that
// cannot be read was being written when the agent died, before any link.
// While the state may have lost records (some are quarantined, or it was
// replaced by its snapshot), an intent without one is kept, and its link
// left alone, as removeStale leaves marked links then.
func (a *Engine) settleIntents(ctx context.Context) {
	ents, err := os.ReadDir(a.intentDir())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("read intents", "dir", a.intentDir(), "err", err)
		}
		return
	}
	for _, ent := range ents {
		path := filepath.Join(a.intentDir(), ent.Name())
		if err := a.settleIntent(ctx, path); err != nil {
			a.log.Warn("cannot undo an attach caught before its record", "intent", path, "err", err)
			continue // the next start tries again
		}
		if err := os.Remove(path); err != nil {
			a.log.Warn("remove intent", "intent", path, "err", err)
		}
	}
}

// settleIntent undoes the attach of the intent at path unless its
// endpoint is stored.
func (a *Engine) settleIntent(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var ae api.Endpoint
	if err := json.Unmarshal(b, &ae); err != nil || ae.ID != filepath.Base(path) || ae.OwnsNetns {
		a.log.Info("dropped an unreadable intent", "intent", path)
		return nil
	}
	e, err := endpointFromAPI(ae)
	if err != nil {
		a.log.Info("dropped an unreadable intent", "intent", path, "err", err)
		return nil
	}
	switch _, err := a.store.Endpoint(e.ID); {
	case err == nil:
		return nil // stored: reconcile settles it
	case !errors.Is(err, store.ErrNotFound):
		return err
	case a.stateReplaced || a.quarantinedIDs().has(e.ID):
		return fmt.Errorf("endpoint %s may be among the records the state lost: its link is left as it is", e.Name)
	}
	if err := a.undoEndpoint(ctx, nil, nil, e); err != nil {
		return err
	}
	a.log.Info("released endpoint", "name", e.Name, "netns", e.Netns, "reason", "caught attaching by a restart, before its record")
	return nil
}
