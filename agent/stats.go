package agent

import "net/http"

// handleStats serves the datapath counters with names (GET /v1/stats).
func (a *Agent) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeError(w, notFound(errNoStats))
}
