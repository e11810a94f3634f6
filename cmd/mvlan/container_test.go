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

// fakeID is the ID of the fake agent's network and of its container.
const fakeID = "0123456789abcdef0123456789abcdef"

// fakeAgent serves part of the agent's API on a unix socket: one network
// and one container, both with ID fakeID, and removals, where "gone" is
// not found, "busy" is in use and anything else is removed.
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
	mux.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode([]api.Network{{ID: fakeID, Name: "pub_net", Driver: api.Driver}})
	})
	mux.HandleFunc("GET /v1/endpoints", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode([]api.Endpoint{{ID: fakeID, Name: "c1", Network: "pub_net"}})
	})
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

// TestListIDs: network ls and ps show 12 characters of an ID in their
// table, with -q and in --format templates (table or not), as Docker's;
// --no-trunc shows it whole; --format json has it whole (ls: the shape
// of network inspect).
func TestListIDs(t *testing.T) {
	sock := fakeAgent(t)
	short := fakeID[:12]
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "ls", "--format", `table {{.ID}}\t{{.Name}}`}, "NETWORK ID     NAME\n" + short + "   pub_net\n"},
		{[]string{"network", "ls", "--format", "{{.ID}} {{.Name}}"}, short + " pub_net\n"},
		{[]string{"network", "ls", "--format", `{{json .}}`}, `"Id":"` + short + `"`},
		{[]string{"network", "ls", "--no-trunc", "--format", `table {{.ID}}`}, "NETWORK ID\n" + fakeID + "\n"},
		{[]string{"network", "ls", "-q"}, short + "\n"},
		{[]string{"network", "ls"}, "\n" + short + "   pub_net"},
		{[]string{"network", "ls", "--format", "json"}, `"Id": "` + fakeID + `"`},
		{[]string{"ps", "--format", `table {{.ID}}\t{{.Name}}`}, "CONTAINER ID   NAME\n" + short + "   c1\n"},
		{[]string{"ps", "--format", "{{.ID}}", "--no-trunc"}, fakeID + "\n"},
		{[]string{"ps", "-q"}, short + "\n"},
		{[]string{"ps"}, "\n" + short + "   c1"},
		{[]string{"ps", "--format", "json"}, `"ID": "` + fakeID + `"`},
	} {
		app := newApp()
		var out bytes.Buffer
		app.Writer = &out
		err := app.Run(interspersed(app, append([]string{"mvlan", "--socket", sock}, tc.args...)))
		if err != nil || !strings.Contains(out.String(), tc.want) {
			t.Errorf("mvlan %q: %v, printed\n%s\nwant it to contain\n%s", tc.args, err, out.String(), tc.want)
		}
	}
}
