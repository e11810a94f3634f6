package agent

import (
	"encoding/json"
	"fmt"
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
