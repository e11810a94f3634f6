package link

// The announcement frames, for the external tests.
var (
	GratuitousARP = gratuitousARP
	UnsolicitedNA = unsolicitedNA
)

// Waits is how many times e waited for a notification.
func (e *NetnsEvents) Waits() int { return e.waits }

// WakeEvery is how often the namespace listener wakes at most.
const WakeEvery = wakeEvery
