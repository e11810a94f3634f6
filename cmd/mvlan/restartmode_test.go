package main

import "testing"

// TestRestartSwitchesMode: an agent restarted with another --attach-mode
// does not keep endpoints whose programs run in the old mode (start-up
// adopts only what it would have attached): the default puts them on
// clsact, and after a restart with --attach-mode tcx every hook of the
// parent and of both containers is on TCX, and no filter of ours is left.
func TestRestartSwitchesMode(t *testing.T) {
	t.Parallel()
	e := newDPEnv(t, dpModes[0])
	c1, c2, _, _ := e.pubNetPair()
	e.mode = dpModes[1]
	e.flags = append([]string{"--metrics-addr", metricsAddr}, e.mode.flags...)
	e.restart()
	e.wantMode(6)
	for _, c := range []string{c1, c2} {
		e.wantAttached(c, "eth0")
	}
}
