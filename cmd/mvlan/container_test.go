package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
)

// fakeAgent serves the removals of the agent's API on a unix socket:
// "gone" is not found, "busy" is in use, anything else is removed.
func fakeAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mvlan.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	remove := func(w http.ResponseWriter, r *http.Request) {
		switch ref := r.PathValue("ref"); ref {
		case "gone":
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(api.Error{Message: `no container or network "gone"`, Kind: api.KindNotFound})
		case "busy":
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(api.Error{Message: `"busy" is in use`, Kind: api.KindConflict})
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /v1/endpoints/{ref}", remove)
	mux.HandleFunc("DELETE /v1/networks/{ref}", remove)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// TestRmForce: rm and network rm fail on a name that is not there, but
// go on with the rest; with -f (--force) that is no error: rm -f says so
// on stderr (docker rm -f), network rm -f says nothing (docker network
// rm -f). Any other failure still fails with -f.
func TestRmForce(t *testing.T) {
	sock := fakeAgent(t)
	for _, tc := range []struct {
		args      []string
		fails     bool
		out, errs string // errs: part of stderr; "" wants it empty
	}{
		{[]string{"rm", "gone", "a"}, true, "a\n", ""},
		{[]string{"rm", "-f", "gone", "a"}, false, "a\n", `mvlan: no container or network "gone"`},
		{[]string{"rm", "a", "gone", "--force"}, false, "a\n", `"gone"`},
		{[]string{"rm", "-f", "busy", "gone"}, true, "", `"gone"`},
		{[]string{"network", "rm", "gone", "n"}, true, "n\n", ""},
		{[]string{"network", "rm", "-f", "gone", "n"}, false, "n\n", ""},
		{[]string{"network", "remove", "--force", "gone"}, false, "", ""},
		{[]string{"network", "rm", "-f", "busy"}, true, "", ""},
	} {
		app := newApp()
		var out, errs bytes.Buffer
		app.Writer, app.ErrWriter = &out, &errs
		err := app.Run(interspersed(app, append([]string{"mvlan", "--socket", sock}, tc.args...)))
		wantErrs := tc.errs != "" && strings.Contains(errs.String(), tc.errs) || tc.errs == "" && errs.Len() == 0
		if (err != nil) != tc.fails || out.String() != tc.out || !wantErrs {
			t.Errorf("mvlan %q: error %v, out %q, stderr %q; want failure %v, out %q, stderr %q",
				tc.args, err, out.String(), errs.String(), tc.fails, tc.out, tc.errs)
		}
	}
}
