package link

// The announcement frames, for the external tests.
var (
	GratuitousARP = gratuitousARP
	UnsolicitedNA = unsolicitedNA
)
