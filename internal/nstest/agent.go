package nstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Agent is an mvlan agent run by a test in a sandbox's host namespace,
// with its state, bpffs and socket in a directory of its own. It is
// killed, and its bpffs unmounted, when the test ends.
type Agent struct {
	Socket string
	Dir    string
	Env    []string // extra environment of the next Start

	t    testing.TB
	sb   *Sandbox
	bin  string
	args []string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

// StartAgent runs `bin agent` (bin: a built mvlan) with extra agent flags
// in the sandbox's host namespace and waits until its API answers. It
// serves no Docker plugin socket unless flags ask for one.
func StartAgent(t testing.TB, sb *Sandbox, bin string, flags ...string) *Agent {
	t.Helper()
	dir, err := os.MkdirTemp("", "mvt-ag") // short: the socket's path must fit
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{t: t, sb: sb, bin: bin, Dir: dir, Socket: filepath.Join(dir, "mvlan.sock")}
	a.args = append([]string{"--socket", a.Socket, "agent", "--state-dir", filepath.Join(dir, "state"),
		"--metrics-addr", "", "--bpffs", filepath.Join(dir, "bpf"), "--plugin-socket=", "--docker-host="}, flags...)
	t.Cleanup(func() {
		a.end()
		_ = unix.Unmount(filepath.Join(dir, "bpf"), unix.MNT_DETACH)
		_ = os.RemoveAll(dir)
	})
	a.Start()
	return a
}

// Start (re)starts the agent and waits until its API answers.
func (a *Agent) Start() {
	a.t.Helper()
	a.cmd = exec.Command("nsenter", append([]string{"--net=" + a.sb.Path, "--", a.bin}, a.args...)...)
	a.cmd.Env = append(os.Environ(), a.Env...)
	a.cmd.Stdout, a.cmd.Stderr = a, a
	if err := a.cmd.Start(); err != nil {
		a.t.Fatalf("start agent: %v", err)
	}
	done := make(chan error, 1)
	a.done = done
	go func() { done <- a.cmd.Wait() }()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", a.Socket)
	}}, Timeout: time.Second}
	defer hc.CloseIdleConnections()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if resp, err := hc.Get("http://mvlan/v1/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-done:
			done <- err
			a.t.Fatalf("agent exited during start: %v\n%s", err, a.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	a.t.Fatalf("agent did not answer within 15s\n%s", a.Log())
}

// Stop sends SIGTERM and fails the test unless the agent exits cleanly.
func (a *Agent) Stop() {
	a.t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		a.done <- err
		if err != nil {
			a.t.Fatalf("agent exit after SIGTERM: %v\n%s", err, a.Log())
		}
	case <-time.After(15 * time.Second):
		a.t.Fatalf("agent did not stop on SIGTERM\n%s", a.Log())
	}
}

// WaitExit waits up to 10 s for the agent to exit on its own (a test's
// crash point) and fails the test if it does not.
func (a *Agent) WaitExit() {
	a.t.Helper()
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(10 * time.Second):
		a.t.Fatalf("agent still running\n%s", a.Log())
	}
}

// end ends the agent after its test: SIGKILL, or under make cover
// (CoverDirEnv) first SIGTERM, so that it writes its coverage counters.
func (a *Agent) end() {
	if os.Getenv(CoverDirEnv) != "" && a.cmd != nil && a.cmd.Process != nil {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-a.done:
			a.done <- err
			return
		case <-time.After(5 * time.Second):
		}
	}
	a.Kill()
	NoRaces(a.t, "the agent", a.Log())
}

// Kill SIGKILLs the agent if it runs (nsenter execs it: the pid is its).
func (a *Agent) Kill() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = a.cmd.Process.Kill()
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(5 * time.Second):
	}
}

// Write collects the agent's output (Agent is its stdout and stderr).
func (a *Agent) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.Write(p)
}

// Log returns what the agent printed so far.
func (a *Agent) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// CLI runs `bin --socket SOCKET args...` against this agent and returns
// its stdout; it fails the test unless the command exits 0.
func (a *Agent) CLI(args ...string) string {
	a.t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(a.bin, append([]string{"--socket", a.Socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		a.t.Fatalf("mvlan %v: %v\n%s%s\nagent log:\n%s", args, err, out.String(), errb.String(), a.Log())
	}
	return out.String()
}

func (a *Agent) String() string { return fmt.Sprintf("agent at %s", a.Socket) }
