package agent

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/mvlan/mvlan/api"
)

// kindError tags an error with the API kind it is answered as.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func invalid(err error) error  { return &kindError{api.KindInvalid, err} }
func notFound(err error) error { return &kindError{api.KindNotFound, err} }
func conflict(err error) error { return &kindError{api.KindConflict, err} }

func statusOf(kind string) int {
	switch kind {
	case api.KindInvalid:
		return http.StatusBadRequest
	case api.KindNotFound:
		return http.StatusNotFound
	case api.KindConflict:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	kind := api.KindInternal
	var ke *kindError
	if errors.As(err, &ke) {
		kind = ke.kind
	}
	writeJSON(w, statusOf(kind), api.Error{Message: err.Error(), Kind: kind})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
