package engine

// Lease times are wall-clock times (dhcp.wallClock): a lease runs out on
// the server's clock also while this host is suspended, which Go's
// monotonic clock does not count. A step of the wall clock back (an RTC
// kept in local time east of UTC, stepped by chrony at boot) would delay
// every renewal by the step, past the server's expiry, while the endpoint
// keeps using the address. Each keeper watches the wall clock against
// CLOCK_BOOTTIME (which counts suspend and is never stepped) and moves
// its lease's times back with such a step, so that the lease keeps the
// time it had left. A step forward is left alone: it may be time that
// really passed (a VM paused and resumed, whose boot clock did not count
// the pause, then stepped by NTP), when the server's lease ran out too;
// the lease then renews, or expires, by the wall clock at once: the safe
// side.

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/dhcp"
)

// stepAtLeast is the least change of the wall clock against boot time
// taken as a step; NTP's slewing moves it by at most 0.5 ms a second,
// and each look takes up what the last one left.
const stepAtLeast = time.Second

// clockSkew is the wall clock less CLOCK_BOOTTIME (0 if that cannot be
// read: no step is seen).
func clockSkew() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - ts.Nano())
}

// stepBack is how far the wall clock was stepped back between two looks
// that saw skews was and now: 0 for a slew, a step forward, or a look
// that could not read the clocks.
func stepBack(was, now time.Duration) time.Duration {
	if was == 0 || now == 0 || now-was > -stepAtLeast {
		return 0
	}
	return now - was
}

// shifted is l with its times moved by step (nil stays nil).
func shifted(l *dhcp.Lease, step time.Duration) *dhcp.Lease {
	if l == nil {
		return nil
	}
	c := *l
	for _, t := range []*time.Time{&c.Obtained, &c.Renew, &c.Rebind, &c.Expiry} {
		*t = t.Add(step)
	}
	if !c.LastTry.IsZero() {
		c.LastTry = c.LastTry.Add(step)
	}
	return &c
}

// shiftLease moves en's lease of the family back by the wall clock's step
// (negative) and stores it: it keeps the time it had left.
func (a *Engine) shiftLease(n *network, en *entry, v6 bool, step time.Duration) {
	en.busy.Lock()
	defer en.busy.Unlock()
	cur, ok := n.current(en)
	if !ok || cur.State != Ready || *cur.lease(v6) == nil {
		return // leaving: its lease is given back
	}
	*cur.lease(v6) = shifted(*cur.lease(v6), step)
	a.log.Warn("the wall clock was stepped back: the DHCP lease's times move with it, keeping the time it had left",
		"name", cur.Name, "network", n.name(), "family", protoName(v6), "step", step)
	if err := a.store.UpdateEndpoint(cur.api()); err != nil {
		a.log.Warn("DHCP lease times moved with the clock, not stored: a restart takes the old ones", "name", cur.Name, "err", err)
	}
	n.mu.Lock()
	n.set(en, cur)
	n.mu.Unlock()
}
