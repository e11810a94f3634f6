package agent

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServerTimeouts: on a server of newServer (its timeouts shortened
// to 200 ms), a client that sends a header and stalls the body is
// answered with an error once readTimeout has passed, and a stop then
// takes no longer; a request whose handler takes several readTimeouts,
// with a body or without, is answered in full with its context never
// cancelled (ReadTimeout bounds reading the request only).
func TestServerTimeouts(t *testing.T) {
	defer func(h, r, i time.Duration) { readHeaderTimeout, readTimeout, idleTimeout = h, r, i }(readHeaderTimeout, readTimeout, idleTimeout)
	readHeaderTimeout, readTimeout, idleTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	slow := func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			var v map[string]string
			if err := decode(r, &v); err != nil {
				writeError(w, err)
				return
			}
		}
		time.Sleep(3 * readTimeout)
		if err := r.Context().Err(); err != nil {
			http.Error(w, "cancelled: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "done")
	}
	srv, sock := serveTest(t, http.HandlerFunc(slow))
	for _, req := range []string{
		"POST /v1/networks HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
		"GET /v1/networks HTTP/1.1\r\nHost: mvlan\r\nConnection: close\r\n\r\n",
	} {
		if got := exchangeRaw(t, sock, req); !strings.HasPrefix(got, "HTTP/1.") || !strings.Contains(got, " 200 OK\r\n") || !strings.HasSuffix(got, "done") {
			t.Errorf("%q on a handler taking 3 readTimeouts: answered %q; want 200 done", strings.Fields(req)[0], got)
		}
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /v1/networks HTTP/1.0\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(conn).ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.0 400") {
		t.Errorf("a stalled body: answered %q (%v); want 400 once readTimeout passed", line, err)
	}
	stalled, err := net.Dial("unix", sock) // a second one, stalled while the server stops
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	_, _ = io.WriteString(stalled, "POST /v1/networks HTTP/1.0\r\nContent-Length: 100\r\n\r\n{")
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := srv.Shutdown(ctx); err != nil || time.Since(t0) > 2*time.Second {
		t.Errorf("stop with a stalled body: %v after %v; want a clean stop within readTimeout", err, time.Since(t0))
	}
}

// serveTest serves h with newServer on a unix socket until the test ends.
func serveTest(t *testing.T, h http.Handler) (*http.Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mvlan.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return srv, sock
}

// exchangeRaw sends req on a fresh connection and returns all it reads
// back (5 s at most).
func exchangeRaw(t *testing.T, sock, req string) string {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(conn)
	return string(b)
}
