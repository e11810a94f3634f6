package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// The client speaks HTTP/1.0 over the unix socket itself instead of using
// net/http: initialising net/http (TLS, HTTP/2, x509) costs every CLI
// process about 0.5 ms, as much as the rest of `mvlan --version`. One
// request per connection; the agent's net/http server ends the body by
// closing the connection (or sends Content-Length), never chunked, for
// an HTTP/1.0 request.

// maxBody bounds an answer read into memory.
const maxBody = 256 << 20

// requestTimeout bounds a request whose context has no deadline (a
// variable for the tests).
var requestTimeout = 5 * time.Minute

// response is an answer of the agent.
type response struct {
	code   int
	status string // e.g. "404 Not Found"
	body   []byte
}

// roundTrip sends one request on a fresh connection and reads the answer.
// A dial failure is returned as is, so that the caller can say the agent
// is not reachable; ctx cancels the request at any point. A request that
// runs out of time (ctx's deadline, else requestTimeout) is timedOut.
func roundTrip(ctx context.Context, socket, method, path string, body []byte) (response, error) {
	dl, hasDeadline := ctx.Deadline()
	limit := requestTimeout
	if hasDeadline {
		limit = time.Until(dl)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return response{}, errDial{err}
	}
	defer conn.Close()
	// ctx's own deadline ends the request through AfterFunc, so that the
	// error is ctx's; without one, requestTimeout bounds it.
	if !hasDeadline {
		if err := conn.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
			return response{}, err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := exchange(conn, method, path, body)
	if cerr := ctx.Err(); cerr != nil && err != nil {
		err = cerr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return response{}, timedOut{limit, err}
	}
	return resp, err
}

// timedOut is a request that had no answer within after while its
// connection stayed open: the agent is running, but did not finish.
type timedOut struct {
	after time.Duration
	err   error
}

func (e timedOut) Error() string { return e.err.Error() }
func (e timedOut) Unwrap() error { return e.err }

// errDial marks a failure to connect.
type errDial struct{ err error }

func (e errDial) Error() string { return e.err.Error() }
func (e errDial) Unwrap() error { return e.err }

func exchange(conn net.Conn, method, path string, body []byte) (response, error) {
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.0\r\nHost: mvlan\r\nUser-Agent: mvlan\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return response{}, fmt.Errorf("send request: %w", err)
	}
	return readResponse(bufio.NewReader(conn))
}

// readResponse parses an HTTP/1.x answer: status line, header, body.
func readResponse(br *bufio.Reader) (response, error) {
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		return response{}, fmt.Errorf("read answer: %w", err)
	}
	proto, status, ok := strings.Cut(line, " ")
	code, cerr := strconv.Atoi(strings.SplitN(status, " ", 2)[0])
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || cerr != nil || code < 100 || code > 999 {
		return response{}, fmt.Errorf("read answer: not an HTTP status line: %q", line)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return response{}, fmt.Errorf("read answer header: %w", err)
	}
	if !bodyAllowed(code) {
		// No body, whatever the header says; the agent may close the
		// connection well after it sent this (a DELETE's 204): waiting
		// for that close would cost every such request a wake-up of
		// the agent's goroutine.
		return response{code: code, status: status}, nil
	}
	if te := hdr.Get("Transfer-Encoding"); te != "" {
		return response{}, fmt.Errorf("read answer: unexpected Transfer-Encoding %q to an HTTP/1.0 request", te)
	}
	if cl := hdr.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 || n > maxBody {
			return response{}, fmt.Errorf("read answer: bad Content-Length %q", cl)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return response{}, fmt.Errorf("read answer body: %w", err)
		}
		return response{code: code, status: status, body: body}, nil
	}
	body, err := io.ReadAll(io.LimitReader(br, maxBody+1))
	if err != nil {
		return response{}, fmt.Errorf("read answer body: %w", err)
	}
	if len(body) > maxBody {
		return response{}, fmt.Errorf("read answer: body longer than %d bytes", maxBody)
	}
	return response{code: code, status: status, body: body}, nil
}

// bodyAllowed reports whether an answer with this status may have a body
// (RFC 9110: 1xx, 204 and 304 never do).
func bodyAllowed(code int) bool {
	return code >= 200 && code != 204 && code != 304
}
