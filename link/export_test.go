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

// AfterAdd makes AttachEndpoint run f between the creation of its
// macvlan and the look-up of it (findBorn), until the test ends.
func AfterAdd(t interface{ Cleanup(func()) }, f func(netnsPath, name string)) {
	afterAdd = f
	t.Cleanup(func() { afterAdd = nil })
}
