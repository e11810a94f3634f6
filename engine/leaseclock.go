package engine

// Lease times are wall-clock times (dhcp.wallClock): a lease runs out on
// the server's clock also while this host is suspended, which Go's
// monotonic clock does not count. A step of the wall clock (an RTC kept
// in local time stepped by chrony at boot, a VM resumed and stepped by
// NTP) would then move every renewal by the step: late by it after a
// step back, so that the server's lease runs out first; at once after a
// step forward, taking every address off. The keepers look for steps
// against CLOCK_BOOTTIME, which counts suspend and is never stepped, and
// move the leases' times with a step before they act on them.

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/dhcp"
)

// stepAtLeast is the least change of the wall clock against boot time
// taken as a step; NTP's slewing moves it by at most 0.5 ms a second.
const stepAtLeast = time.Second

// wallSteps finds steps of the wall clock against boot time; the zero
// value reads the system's clocks (wall, boot: a test's).
type wallSteps struct {
	mu   sync.Mutex
	wall func() time.Time
	boot func() time.Duration
	skew time.Duration // wall - boot at the last look
	seen bool
}

// bootTime is CLOCK_BOOTTIME (0 if it cannot be read: no step is seen).
func bootTime() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// settle looks for a step of the wall clock since the last look and,
// with one, runs shift with it before it returns: a caller that then
// reads the time and the leases sees both moved. Slewing is no step.
func (w *wallSteps) settle(shift func(step time.Duration)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wall, boot := time.Now(), bootTime()
	if w.wall != nil {
		wall, boot = w.wall(), w.boot()
	}
	if boot == 0 {
		return
	}
	skew := time.Duration(wall.UnixNano()) - boot
	step := skew - w.skew
	first := !w.seen
	w.skew, w.seen = skew, true // a slew's bit is taken up: slews never add up to a step
	if !first && step.Abs() >= stepAtLeast {
		shift(step)
	}
}

// shifted is l with its times moved by step; nil stays nil, and one
// obtained within justNow of now (after the step) stays as it is.
func shifted(l *dhcp.Lease, step time.Duration, now time.Time) *dhcp.Lease {
	if l == nil || l.Obtained.Sub(now).Abs() <= justNow {
		return l
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

// justNow bounds how recent (on the stepped clock) a lease obtained
// after the step, before the keepers saw it (they look every pollGone),
// may be: it is in the new time already and is not moved.
const justNow = 2 * pollGone

// shiftLeases moves the times of every endpoint's leases by step, the
// wall clock's: each lease keeps the time it has left. One obtained just
// now is left as it is (see justNow).
func (a *Engine) shiftLeases(step time.Duration) {
	a.log.Warn("the wall clock was stepped: DHCP lease times move with it, each keeping the time it had left", "step", step)
	for _, n := range a.networkList() {
		if !n.DHCP {
			continue
		}
		n.mu.Lock()
		ens := make([]*entry, 0, len(n.eps))
		for _, en := range n.eps {
			ens = append(ens, en)
		}
		n.mu.Unlock()
		for _, en := range ens {
			a.shiftLease(n, en, step, time.Now())
		}
	}
}

// shiftLease moves en's leases by step and stores them.
func (a *Engine) shiftLease(n *network, en *entry, step time.Duration, now time.Time) {
	en.busy.Lock()
	defer en.busy.Unlock()
	cur, ok := n.current(en)
	if !ok || cur.State != Ready || (cur.Lease == nil && cur.Lease6 == nil) {
		return // one being made leases in the new time; one leaving gives its lease back
	}
	cur.Lease, cur.Lease6 = shifted(cur.Lease, step, now), shifted(cur.Lease6, step, now)
	if err := a.store.UpdateEndpoint(cur.api()); err != nil {
		a.log.Warn("DHCP lease times moved with the clock, not stored: a restart takes the old ones", "name", cur.Name, "err", err)
	}
	n.mu.Lock()
	n.set(en, cur)
	n.mu.Unlock()
}
