package agent

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mvlan/mvlan/api"
)

// handler routes the API.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/networks", a.handleCreateNetwork)
	mux.HandleFunc("GET /v1/networks", a.handleNetworks)
	mux.HandleFunc("GET /v1/networks/{ref}", a.handleNetwork)
	mux.HandleFunc("DELETE /v1/networks/{ref}", a.handleRemoveNetwork)
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"agent_id": a.store.AgentID()})
	})
	return mux
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(fmt.Errorf("bad request body: %w", err))
	}
	return nil
}

func (a *Agent) handleCreateNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkCreate
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	n, err := a.CreateNetwork(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, n)
}

func (a *Agent) handleNetworks(w http.ResponseWriter, _ *http.Request) {
	ns, err := a.Networks()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ns)
}

func (a *Agent) handleNetwork(w http.ResponseWriter, r *http.Request) {
	n, err := a.Network(r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (a *Agent) handleRemoveNetwork(w http.ResponseWriter, r *http.Request) {
	if err := a.RemoveNetwork(r.Context(), r.PathValue("ref")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
