package agent

import (
	"encoding/json"
	"net/http"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
)

// apiKind is an engine error kind as the API names it.
func apiKind(k engine.Kind) string {
	switch k {
	case engine.KindInvalid:
		return api.KindInvalid
	case engine.KindNotFound:
		return api.KindNotFound
	case engine.KindConflict:
		return api.KindConflict
	case engine.KindBusy:
		return api.KindBusy
	}
	return api.KindInternal
}

func statusOf(kind string) int {
	switch kind {
	case api.KindInvalid:
		return http.StatusBadRequest
	case api.KindNotFound:
		return http.StatusNotFound
	case api.KindConflict:
		return http.StatusConflict
	case api.KindBusy:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	kind := apiKind(engine.KindOf(err))
	writeJSON(w, statusOf(kind), api.Error{Message: err.Error(), Kind: kind})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
