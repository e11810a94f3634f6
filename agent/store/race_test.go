//go:build race

package store

// raceEnabled: the race detector reserves terabytes of address space
// (so the children cannot run under an address-space limit) and slows
// each child's start.
const raceEnabled = true
