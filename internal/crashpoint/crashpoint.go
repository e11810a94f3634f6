// Package crashpoint lets the crash-safety tests kill the agent between two
// steps of an operation: Hit kills the process when MVLAN_TEST_CRASHPOINT
// names the point it is called with, and does nothing otherwise.
package crashpoint

import "os"

// Hit kills the process (SIGKILL, no deferred work runs) when the test
// hook names this point.
func Hit(name string) {
	if os.Getenv("MVLAN_TEST_CRASHPOINT") == name {
		p, _ := os.FindProcess(os.Getpid())
		_ = p.Kill()
		select {}
	}
}
