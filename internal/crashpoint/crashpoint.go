// Package crashpoint lets the crash-safety tests kill the agent between two
// steps of an operation: Hit kills the process when MVLAN_TEST_CRASHPOINT
// names the point it is called with, and does nothing otherwise. A test
// may also hold the agent at a point for a while (MVLAN_TEST_HOLDPOINT),
// to look at what it did before that step, or change what the next step
// finds.
package crashpoint

import (
	"os"
	"slices"
	"strings"
	"time"
)

// Hit kills the process (SIGKILL, no deferred work runs) when the test
// hook names this point; when MVLAN_TEST_HOLDPOINT names it (one of its
// comma-separated names), it sleeps for MVLAN_TEST_HOLD (a Go duration,
// default 2s) instead.
func Hit(name string) {
	if os.Getenv("MVLAN_TEST_CRASHPOINT") == name {
		p, _ := os.FindProcess(os.Getpid())
		_ = p.Kill()
		select {}
	}
	if hold := os.Getenv("MVLAN_TEST_HOLDPOINT"); hold != "" && slices.Contains(strings.Split(hold, ","), name) {
		d, err := time.ParseDuration(os.Getenv("MVLAN_TEST_HOLD"))
		if err != nil {
			d = 2 * time.Second
		}
		time.Sleep(d)
	}
}
