package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/doctor"
)

// TestDoctorCheckFailed: an agent that answers, but whose check fails, is
// reported as such (a failed check with the agent's reason), not as an
// agent out of reach; one that does not answer is out of reach.
func TestDoctorCheckFailed(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mvlan.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(api.Error{Message: "list links: dump interrupted", Kind: api.KindInternal})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	for _, tc := range []struct {
		socket, want string
		skipped      bool
	}{
		{sock, "the agent's check failed: list links: dump interrupted", false},
		{sock + ".none", "agent not reachable", true},
	} {
		c := agentCheck(t, tc.socket)
		if !strings.Contains(c.Detail, tc.want) || c.Skipped != tc.skipped || c.OK {
			t.Errorf("agent at %s: %+v; want %q, skipped %v", tc.socket, c, tc.want, tc.skipped)
		}
	}
}

// TestDoctorAgentWedged: an agent that takes the check and never answers
// is reported (the check failed, the time it was given) once checkTimeout
// is up; doctor waited the client's 5 minutes.
func TestDoctorAgentWedged(t *testing.T) {
	defer func(d time.Duration) { checkTimeout = d }(checkTimeout)
	checkTimeout = 300 * time.Millisecond
	sock := filepath.Join(t.TempDir(), "mvlan.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	if c := agentCheck(t, sock); c.OK || c.Skipped || !strings.Contains(c.Detail, "the agent's check failed") {
		t.Errorf("a wedged agent: %+v; want the check failed", c)
	}
}

// agentCheck runs mvlan-agent doctor against the agent at socket and
// returns its one check of the agent.
func agentCheck(t *testing.T, socket string) doctor.Check {
	t.Helper()
	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"mvlan-agent", "doctor", "--format", "json", "--bpffs", t.TempDir(), "--socket", socket}); err != nil {
		t.Fatal(err)
	}
	var rep doctorOutput
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	for _, s := range rep.Sections {
		if s.Name == "agent" && len(s.Checks) == 1 {
			return s.Checks[0]
		}
	}
	t.Fatalf("no one check of the agent in:\n%s", out.String())
	return doctor.Check{}
}
