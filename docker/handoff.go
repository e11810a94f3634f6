package docker

import (
	"context"
	"errors"
	"time"
)

type handoffWatch struct{ cancel context.CancelFunc }

// watchHandoff finishes endpoint id once Docker has moved its link into the
// sandbox, for up to handoffWait. Caller holds mu.
func (d *Driver) watchHandoff(id string) {
	d.stopWatch(id)
	base := d.ctx
	ctx, cancel := context.WithTimeout(base, handoffWait)
	w := &handoffWatch{cancel: cancel}
	d.watches[id] = w
	d.spawn(func() {
		defer cancel()
		if d.awaitHandoff(ctx, id) {
			d.spawn(func() { d.nameEndpoint(base, id) })
		}
		d.mu.Lock()
		if d.watches[id] == w {
			delete(d.watches, id)
		}
		d.mu.Unlock()
	})
}

// stopWatch ends the watch of endpoint id, if any. Caller holds mu.
func (d *Driver) stopWatch(id string) {
	if w := d.watches[id]; w != nil {
		w.cancel()
		delete(d.watches, id)
	}
}

// awaitHandoff polls until the engine finishes the handoff; it reports
// whether it ended that way (not by ctx).
func (d *Driver) awaitHandoff(ctx context.Context, id string) bool {
	wait := 10 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				d.log.Warn("Docker did not move the endpoint's link into its sandbox in time; the next agent start finishes it", "endpoint", shortID(id), "waited", handoffWait)
				d.eng.StallHandoff(id)
			}
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
		if d.eng.FinishHandoff(ctx, id) {
			return ctx.Err() == nil
		}
	}
}
