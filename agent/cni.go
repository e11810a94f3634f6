package agent

import (
	"fmt"
	"net/http"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
)

// The CNI plugin is a process per call, and each request to the agent
// costs it a connection and a wake-up of the agent: ADD and DEL of a
// named network are one request each.

// handleCNIAdd attaches a namespace for a CNI runtime and answers the
// endpoint with its network (POST /v1/networks/{ref}/cni, body
// api.EndpointCreate with CNI set). The network is looked up first, so
// that not_found always means there is no such network.
func (a *Agent) handleCNIAdd(w http.ResponseWriter, r *http.Request) {
	req, err := decodeEndpointCreate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ref := r.PathValue("ref")
	if err := checkCNIAdd(ref, req); err != nil {
		writeError(w, err)
		return
	}
	n, err := a.eng.CNINetwork(ref)
	if err != nil {
		writeError(w, err)
		return
	}
	req.Network = n.ID
	e, err := a.eng.CreateEndpoint(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.CNIAdd{Endpoint: e, Network: n})
}

// checkCNIAdd: the body's network, if any, is the path's; the runtime's
// identity is what DEL, CHECK and GC find the endpoint by.
func checkCNIAdd(ref string, req api.EndpointCreate) error {
	if req.Network != "" && req.Network != ref {
		return engine.Invalid(fmt.Errorf("the body names network %q, the path %q; leave it out", req.Network, ref))
	}
	if req.CNI == nil {
		return engine.Invalid(fmt.Errorf("no \"cni\" identity (network, container_id, ifname) in the body"))
	}
	return nil
}

// cniAttachment is the identity in the query: ?name= (the CNI network),
// container= and ifname=.
func cniAttachment(r *http.Request) api.CNIAttachment {
	q := r.URL.Query()
	return api.CNIAttachment{Network: q.Get("name"), ContainerID: q.Get("container"), IfName: q.Get("ifname")}
}

// cniEndpointIn is engine.CNIEndpointIn for the request's query.
func (a *Agent) cniEndpointIn(r *http.Request) (api.Endpoint, error) {
	seen, err := netnsInodeParam(r)
	if err != nil {
		return api.Endpoint{}, err
	}
	return a.eng.CNIEndpointIn(r.PathValue("ref"), cniAttachment(r), r.URL.Query().Get("netns"), seen)
}

// handleCNIEndpoint finds an endpoint by the identity a CNI runtime gave
// it: not_found when there is none, or when it is in another namespace
// than ?netns= (a late CHECK from a sandbox whose attachment an ADD from
// a new one replaced).
func (a *Agent) handleCNIEndpoint(w http.ResponseWriter, r *http.Request) {
	e, err := a.cniEndpointIn(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// handleCNIRelease releases the endpoint a CNI runtime attached with the
// identity in the query, as DELETE /v1/endpoints/{id}?force=true&wait=false
// does (DELETE /v1/networks/{ref}/cni): not_found when there is none, or
// when it is in another namespace than ?netns= (engine.CNIEndpointIn).
func (a *Agent) handleCNIRelease(w http.ResponseWriter, r *http.Request) {
	e, err := a.cniEndpointIn(r)
	if err == nil {
		err = a.eng.ReleaseEndpoints(r.Context(), e.ID)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
