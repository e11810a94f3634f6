package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
)

// handler routes the API.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/networks", a.handleCreateNetwork)
	mux.HandleFunc("GET /v1/networks", a.handleNetworks)
	mux.HandleFunc("GET /v1/networks/{ref}", a.handleNetwork)
	mux.HandleFunc("GET /v1/networks/{ref}/cni", a.handleCNIEndpoint)
	mux.HandleFunc("POST /v1/networks/{ref}/cni", a.handleCNIAdd)
	mux.HandleFunc("DELETE /v1/networks/{ref}/cni", a.handleCNIRelease)
	mux.HandleFunc("DELETE /v1/networks/{ref}", a.handleRemoveNetwork)
	mux.HandleFunc("PATCH /v1/networks/{ref}", a.handleUpdateNetwork)
	mux.HandleFunc("POST /v1/endpoints", a.handleCreateEndpoint)
	mux.HandleFunc("GET /v1/endpoints", a.handleEndpoints)
	mux.HandleFunc("DELETE /v1/endpoints/{ref}", a.handleRemoveEndpoint)
	mux.HandleFunc("DELETE /v1/endpoints", a.handleDisconnect)
	mux.HandleFunc("GET /v1/check", a.handleCheck)
	mux.HandleFunc("GET /v1/endpoints/{id}/check", a.handleCheckEndpoint)
	mux.HandleFunc("GET /v1/stats", a.handleStats)
	mux.HandleFunc("GET /v1/version", a.handleVersion)
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"agent_id": a.eng.AgentID()})
	})
	return mux
}

// maxBody bounds a request body.
const maxBody = 1 << 20

// decode reads a request body of at most maxBody strictly (api.Decode).
func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return engine.Invalid(fmt.Errorf("bad request body: larger than %d bytes; send one JSON object of the request", maxBody))
	case err == nil && len(bytes.TrimSpace(data)) == 0:
		return engine.Invalid(errors.New("bad request body: empty; send one JSON object of the request"))
	case err == nil:
		err = api.Decode(data, v)
	}
	if err != nil {
		return engine.Invalid(fmt.Errorf("bad request body: %w", err))
	}
	return nil
}

func (a *Agent) handleCreateNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkCreate
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	n, err := a.eng.CreateNetwork(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, n)
}

func (a *Agent) handleUpdateNetwork(w http.ResponseWriter, r *http.Request) {
	var req api.NetworkUpdate
	if err := decode(r, &req); err != nil {
		writeError(w, err)
		return
	}
	n, err := a.eng.UpdateNetwork(r.Context(), r.PathValue("ref"), req)
	if err != nil {
		writeError(w, a.notJoined(r.Context(), r.PathValue("ref"), err, joinAdvice))
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (a *Agent) handleNetworks(w http.ResponseWriter, r *http.Request) {
	ns, err := a.eng.Networks()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, append(ns, a.eng.UnjoinedNetworks(r.Context())...))
}

// queryBool is r's query parameter name: def when absent, true or false;
// any other value is an invalid request naming it (not taken for false:
// ?force=1 must not remove without force).
func queryBool(r *http.Request, name string, def bool) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "":
		return def, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return def, engine.Invalid(fmt.Errorf("query parameter %s=%q: use %s=true or %s=false", name, v, name, name))
	}
}

func (a *Agent) handleNetwork(w http.ResponseWriter, r *http.Request) {
	get := a.eng.Network
	endpoints, err := queryBool(r, "endpoints", true)
	if err != nil {
		writeError(w, err)
		return
	}
	if !endpoints {
		get = a.eng.NetworkBrief
	}
	n, err := get(r.PathValue("ref"))
	if err != nil {
		writeError(w, a.notJoined(r.Context(), r.PathValue("ref"), err, joinAdvice))
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (a *Agent) handleRemoveNetwork(w http.ResponseWriter, r *http.Request) {
	if err := a.eng.RemoveNetwork(r.Context(), r.PathValue("ref")); err != nil {
		writeError(w, a.notJoined(r.Context(), r.PathValue("ref"), err, rmAdvice))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) handleCreateEndpoint(w http.ResponseWriter, r *http.Request) {
	req, err := decodeEndpointCreate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	e, err := a.eng.CreateEndpoint(r.Context(), req)
	if err != nil {
		writeError(w, a.notJoined(r.Context(), req.Network, err, joinAdvice))
		return
	}
	writeJSON(w, http.StatusCreated, e)
}

func (a *Agent) handleEndpoints(w http.ResponseWriter, _ *http.Request) {
	eps, err := a.eng.Endpoints()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, eps)
}

func (a *Agent) handleRemoveEndpoint(w http.ResponseWriter, r *http.Request) {
	force, ferr := queryBool(r, "force", false)
	wait, werr := queryBool(r, "wait", true)
	if err := errors.Join(ferr, werr); err != nil {
		writeError(w, err)
		return
	}
	remove := func(ctx context.Context, ref string) error {
		return a.eng.RemoveEndpoints(ctx, ref, force)
	}
	if !wait {
		remove = a.eng.ReleaseEndpoints
	}
	if err := remove(r.Context(), r.PathValue("ref")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) handleDisconnect(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	seen, err := netnsInodeParam(r)
	if err == nil {
		err = a.eng.Disconnect(r.Context(), q.Get("network"), q.Get("netns"), seen)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeEndpointCreate reads the body of an attach, and the inode of its
// namespace where the request was made (query netns_inode: in the body,
// an agent not yet restarted after an upgrade would refuse the field).
func decodeEndpointCreate(r *http.Request) (req api.EndpointCreate, err error) {
	if err = decode(r, &req); err == nil {
		req.NetnsInode, err = netnsInodeParam(r)
	}
	return req, err
}

// netnsInodeParam is the query's netns_inode (api.NetnsInode), 0 if none.
func netnsInodeParam(r *http.Request) (uint64, error) {
	s := r.URL.Query().Get("netns_inode")
	if s == "" {
		return 0, nil
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, engine.Invalid(fmt.Errorf("netns_inode %q is not a namespace's inode number", s))
	}
	return ino, nil
}

func (a *Agent) handleCheck(w http.ResponseWriter, r *http.Request) {
	fs, err := a.eng.CheckFindings(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.NewCheck(fs))
}

// handleCheckEndpoint serves the drift of one endpoint (CNI CHECK);
// ?routed=GW,GW (may be empty) limits the default routes looked for to
// those via these gateways.
func (a *Agent) handleCheckEndpoint(w http.ResponseWriter, r *http.Request) {
	routed, err := api.ParseRouted(r.URL.Query())
	if err != nil {
		writeError(w, engine.Invalid(err))
		return
	}
	drift, err := a.eng.CheckEndpoint(r.Context(), r.PathValue("id"), routed)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.Check{Drift: drift})
}

// handleStats serves the datapath counters with names (GET /v1/stats).
func (a *Agent) handleStats(w http.ResponseWriter, _ *http.Request) {
	s, err := a.eng.Stats()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}
