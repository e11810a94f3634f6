package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// agentProc is an `mvlan agent` running in a sandbox's host namespace with
// its own socket, state directory, bpffs directory and log file.
type agentProc struct {
	e       *env
	name    string
	ns      string // host namespace path
	dir     string
	socket  string
	metrics string // listen address inside ns; "" off
	extra   []string
	logPath string

	cmd  *exec.Cmd
	done chan error
	api  *api.Client
}

// newAgent prepares an agent; the clean-up stops it and unmounts the bpffs
// it mounts on its --bpffs directory.
func (e *env) newAgent(name, ns, metrics string, extra ...string) *agentProc {
	dir := filepath.Join(e.tmp, name)
	a := &agentProc{e: e, name: name, ns: ns, dir: dir, socket: filepath.Join(dir, "mvlan.sock"),
		metrics: metrics, extra: extra, logPath: filepath.Join(dir, "agent.log")}
	e.onCleanup("stop agent "+name, func() error {
		return errors.Join(a.stop(), unmount(filepath.Join(dir, "bpf")))
	})
	return a
}

// start runs the agent and returns the time from exec until its API
// answers (reconcile included: the agent listens once it has reconciled).
func (a *agentProc) start(ctx context.Context) (time.Duration, error) {
	if a.cmd != nil {
		return 0, fmt.Errorf("agent %s already running", a.name)
	}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	args := append([]string{"--net=" + a.ns, "--", a.e.cfg.mvlan, "--socket", a.socket, "agent",
		"--state-dir", filepath.Join(a.dir, "state"), "--metrics-addr", a.metrics,
		"--bpffs", filepath.Join(a.dir, "bpf"), "--plugin-socket=", "--docker-host="}, a.extra...)
	cmd := exec.Command("nsenter", args...) // nsenter execs the agent: the pid is the agent's
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return 0, fmt.Errorf("start agent %s: %w", a.name, err)
	}
	a.cmd, a.done = cmd, make(chan error, 1)
	go func() { a.done <- cmd.Wait() }()
	a.api = api.NewClient(a.socket)
	for time.Since(t0) < 5*time.Minute {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := a.ping(pctx)
		cancel()
		if err == nil {
			return time.Since(t0), nil
		}
		select {
		case err := <-a.done:
			a.cmd = nil
			return 0, fmt.Errorf("agent %s exited during start: %v\n%s", a.name, err, a.logTail(20))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("agent %s did not answer within 5 minutes\n%s", a.name, a.logTail(20))
}

func (a *agentProc) ping(ctx context.Context) error {
	return a.api.Do(ctx, http.MethodGet, "/v1/ping", nil, nil)
}

// stop sends SIGTERM and waits for the agent to exit (SIGKILL after 60 s).
func (a *agentProc) stop() error {
	if a.cmd == nil {
		return nil
	}
	defer func() { a.cmd = nil }()
	if a.api != nil {
		a.api.Close()
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			return fmt.Errorf("agent %s: exit after SIGTERM: %v\n%s", a.name, err, a.logTail(10))
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		return fmt.Errorf("agent %s did not stop within 60 s of SIGTERM; killed", a.name)
	}
}

// mv runs the CLI against this agent, as an operator would, and returns
// how long the process took.
func (a *agentProc) mv(ctx context.Context, args ...string) (time.Duration, string, error) {
	return timed(ctx, a.e.cfg.mvlan, append([]string{"--socket", a.socket}, args...)...)
}

func (a *agentProc) log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

func (a *agentProc) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(a.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "agent log (" + a.logPath + "):\n" + strings.Join(lines, "\n")
}

// scraper fetches http://addr/metrics from inside the namespace ns; with
// keepAlive it reuses its connection as Prometheus does.
type scraper struct {
	url string
	c   *http.Client
}

func newScraper(ns, addr string) *scraper {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			var c net.Conn
			err := nstest.In(ns, func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, address)
				return err
			})
			return c, err
		},
		MaxIdleConns: 1,
	}
	return &scraper{url: "http://" + addr + "/metrics", c: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// get returns the body of one scrape and how long it took (request to last
// byte).
func (s *scraper) get(ctx context.Context) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return "", 0, err
	}
	t0 := time.Now()
	resp, err := s.c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	d := time.Since(t0)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	return string(body), d, nil
}

func (s *scraper) close() { s.c.CloseIdleConnections() }
