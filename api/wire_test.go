package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientWire: the client's own HTTP/1.0 against net/http's server on a
// unix socket, as the agent serves: a small answer (Content-Length), a
// large one (ended by the close), no body (a 204 also while the server
// keeps the connection open), an error body, a request body
// that arrives whole, a cancelled context that returns at once, and a
// socket nobody listens on.
func TestClientWire(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"error":"a"}`)) })
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`"` + big + `"`)) })
	mux.HandleFunc("DELETE /none", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /err", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":"in use","kind":"conflict"}`))
	})
	mux.HandleFunc("GET /plain", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusBadGateway) })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]string
		if err := decodeBody(r, &v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeBody(w, v)
	})
	// A 204 whose connection the server keeps open a while (the agent
	// closes it after its handler and logging are done).
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux.HandleFunc("DELETE /lingers", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		w.(http.Flusher).Flush()
		<-release
	})
	mux.HandleFunc("GET /slow", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	c := NewClient(sock)
	ctx := context.Background()
	var e Error
	if err := c.Do(ctx, "GET", "/small", nil, &e); err != nil || e.Message != "a" {
		t.Errorf("small: %v %+v", err, e)
	}
	var s string
	if err := c.Do(ctx, "GET", "/big", nil, &s); err != nil || s != big {
		t.Errorf("big: %v, %d bytes, want %d", err, len(s), len(big))
	}
	if err := c.Do(ctx, "DELETE", "/none", nil, nil); err != nil {
		t.Errorf("204: %v", err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	defer lcancel()
	if err := c.Do(lctx, "DELETE", "/lingers", nil, nil); err != nil {
		t.Errorf("204 on a connection left open: %v; want an answer without waiting for the close", err)
	}
	if err := c.Do(ctx, "GET", "/err", nil, nil); !IsKind(err, KindConflict) || err.Error() != "in use" {
		t.Errorf("409: %v", err)
	}
	if err := c.Do(ctx, "GET", "/plain", nil, nil); !IsKind(err, KindInternal) || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Errorf("502 without JSON: %v", err)
	}
	body := map[string]string{"name": strings.Repeat("n", 70000)}
	var back map[string]string
	if err := c.Do(ctx, "POST", "/echo", body, &back); err != nil || back["name"] != body["name"] {
		t.Errorf("echo: %v, %d bytes back", err, len(back["name"]))
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if err := c.Do(cctx, "GET", "/slow", nil, nil); !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 2*time.Second {
		t.Errorf("cancelled: %v after %v", err, time.Since(t0))
	}
	if err := NewClient(sock+".none").Do(ctx, "GET", "/small", nil, nil); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "is `mvlan agent` running") {
		t.Errorf("no agent: %v", err)
	}
}

func decodeBody(r *http.Request, v any) error { return json.NewDecoder(r.Body).Decode(v) }

func writeBody(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }

// TestClientTimeout: a request the agent holds past the client's own
// limit (requestTimeout, shortened here) or past its context's deadline
// fails with ErrNoAnswer saying how long it waited and that the agent is
// running, not that it stopped; the agent's handler sees the client gone
// (its context is cancelled: what lets it undo an unfinished attach). A
// connection the agent breaks still says it stopped or broke.
func TestClientTimeout(t *testing.T) {
	defer func(d time.Duration) { requestTimeout = d }(requestTimeout)
	requestTimeout = 300 * time.Millisecond
	sock := filepath.Join(t.TempDir(), "a.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gone := make(chan struct{}, 2)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /stuck", func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // as the agent decodes it: then net/http watches for the close
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("POST /broken", func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c := NewClient(sock)
	for _, tc := range []struct {
		deadline time.Duration // of the context; 0: none
		path     string
		within   string
	}{
		{0, "/stuck", "within 300ms, though it is running"},
		{200 * time.Millisecond, "/stuck", "within 200ms, though it is running"},
		{0, "/broken", "(it stopped or the connection broke)"},
	} {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if tc.deadline > 0 {
			ctx, cancel = context.WithTimeout(ctx, tc.deadline)
		}
		err := c.Do(ctx, "POST", tc.path, map[string]string{}, nil)
		cancel()
		if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), tc.within) {
			t.Errorf("POST %s: %v; want ErrNoAnswer saying %q", tc.path, err, tc.within)
		}
		if tc.path != "/stuck" {
			continue
		}
		select {
		case <-gone:
		case <-time.After(2 * time.Second):
			t.Errorf("POST %s: the handler's context was not cancelled when the client gave up", tc.path)
		}
	}
}
