package main

import "os"

// The agents the tests start run without the Docker plugin socket: its
// default (/run/docker/plugins/mvlan.sock) is one per machine, and the
// tests run many agents at once. The Docker tests give theirs a socket of
// their own (MVLAN_PLUGIN_SOCKET in agentProc.env, which comes later in
// the environment and wins).
func init() { os.Setenv("MVLAN_PLUGIN_SOCKET", "") }
