package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// mvlanBin is the CLI under test, built once by TestMain when root, with
// the daemon (mvlan-agent) next to it, where `mvlan agent` finds it; not
// when fuzzing (the fuzz targets here are of the CLI's own parsing; only
// they run then, unless -run says otherwise) nor when listing (make fuzz).
var mvlanBin string

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse()
		if fuzzing() && flag.Lookup("test.run").Value.String() == "" {
			_ = flag.Set("test.run", "^Fuzz") // not the end-to-end tests, which have no binaries
		}
		if os.Geteuid() == 0 && !fuzzing() && flag.Lookup("test.list").Value.String() == "" {
			dir, err := os.MkdirTemp("", "mvlan-e2e-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			mvlanBin = filepath.Join(dir, "mvlan")
			out, err := nstest.GoBuild(dir+"/", ".", "../mvlan-agent")
			if err != nil {
				fmt.Fprintf(os.Stderr, "build mvlan and mvlan-agent: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// fuzzing reports whether this process fuzzes (-test.fuzz) or is one of
// the fuzzer's workers.
func fuzzing() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() != "" || w != nil && w.Value.String() == "true"
}

// agentProc is an `mvlan agent` running in a sandbox's host namespace.
type agentProc struct {
	t      testing.TB
	sb     *nstest.Sandbox
	dir    string // holds state/, the socket and the log
	socket string
	env    []string
	flags  []string // extra agent flags; they come last, so they override
	wrap   []string // a command the agent runs under (e.g. setpriv ...), exec'ing the rest
	cmd    *exec.Cmd
	log    *bytes.Buffer
	done   chan error
}

// newAgent prepares (without starting) an agent whose files live in a
// fresh directory and whose host namespace is the sandbox's.
func newAgent(t testing.TB, sb *nstest.Sandbox) *agentProc {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		// The agent mounts a bpffs on its --bpffs directory.
		_ = unix.Unmount(filepath.Join(dir, "bpf"), unix.MNT_DETACH)
	})
	return &agentProc{t: t, sb: sb, dir: dir, socket: filepath.Join(dir, "mvlan.sock")}
}

// command is the agent's command line in the sandbox, logging to a.log.
func (a *agentProc) command(extraEnv ...string) *exec.Cmd {
	if a.log == nil {
		a.log = &bytes.Buffer{}
	}
	fmt.Fprintf(a.log, "---- start\n")
	argv := append(slices.Clone(a.wrap), "nsenter", "--net="+a.sb.Path, "--", mvlanBin, "--socket", a.socket, "agent",
		"--state-dir", a.stateDir(), "--metrics-addr", "", "--bpffs", filepath.Join(a.dir, "bpf"))
	cmd := exec.Command(argv[0], append(argv[1:], a.flags...)...)
	cmd.Env = append(append(os.Environ(), a.env...), extraEnv...)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	return cmd
}

// stateDir is the agent's --state-dir.
func (a *agentProc) stateDir() string { return filepath.Join(a.dir, "state") }

// start runs the agent and waits until its API answers.
func (a *agentProc) start(extraEnv ...string) {
	a.t.Helper()
	a.cmd = a.command(extraEnv...)
	if err := a.cmd.Start(); err != nil {
		a.t.Fatalf("start agent: %v", err)
	}
	a.done = make(chan error, 1)
	go func() { a.done <- a.cmd.Wait() }()
	a.t.Cleanup(a.end)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, code := a.mv("network", "ls", "-q"); code == 0 {
			return
		}
		select {
		case err := <-a.done:
			a.done <- err
			a.t.Fatalf("agent exited during start: %v\n%s", err, a.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	a.t.Fatalf("agent did not answer within 10s\n%s", a.log)
}

// stop sends SIGTERM and expects a clean exit.
func (a *agentProc) stop() {
	a.t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			a.t.Fatalf("agent exit after SIGTERM: %v\n%s", err, a.log)
		}
	case <-time.After(10 * time.Second):
		a.t.Fatalf("agent did not stop on SIGTERM\n%s", a.log)
	}
}

// end ends the agent after its test: SIGKILL, or under make cover first
// SIGTERM, so that it writes its coverage counters on the way out.
func (a *agentProc) end() {
	if os.Getenv(nstest.CoverDirEnv) != "" && a.cmd != nil && a.cmd.Process != nil {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-a.done:
			a.done <- err
			return
		case <-time.After(5 * time.Second):
		}
	}
	a.kill()
	if a.log != nil {
		nstest.NoRaces(a.t, "the agent", a.log.String())
	}
}

// kill SIGKILLs the agent (nsenter execs it, so the pid is the agent's).
func (a *agentProc) kill() {
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

// waitExit waits for the agent to die on its own (a crashpoint).
func (a *agentProc) waitExit() {
	a.t.Helper()
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(10 * time.Second):
		a.t.Fatalf("agent still running\n%s", a.log)
	}
}

// mv runs the CLI against this agent; it returns stdout, stderr and the exit code.
func (a *agentProc) mv(args ...string) (string, string, int) {
	return runCmd(60*time.Second, mvlanBin, append([]string{"--socket", a.socket}, args...)...)
}

// endpoints lists the agent's endpoints through its API (all the fields,
// the BPF keys included; mvlan ps --format json prints an operator's view).
func (a *agentProc) endpoints() []api.Endpoint {
	a.t.Helper()
	cl := api.NewClient(a.socket)
	defer cl.Close()
	eps, err := cl.Endpoints(context.Background())
	if err != nil {
		a.t.Fatalf("list endpoints: %v\nagent log:\n%s", err, a.log)
	}
	return eps
}

// runCmd runs a command with a timeout; it returns stdout, stderr and the
// exit code (-1 when it could not run, with the reason as stderr).
func runCmd(timeout time.Duration, name string, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	return out.String(), err.Error(), -1
}

// ok runs the CLI and fails the test unless it exits 0.
func (a *agentProc) ok(args ...string) string {
	a.t.Helper()
	out, errs, code := a.mv(args...)
	if code != 0 {
		a.t.Fatalf("mvlan %s: exit %d\n%s%s\nagent log:\n%s", strings.Join(args, " "), code, out, errs, a.log)
	}
	return out
}

// links returns the links of the sandbox host namespace: name -> alias,
// as iproute2 lists them (`ip -j -d link`), not mvlan's link package: the
// leak checks that use it must not share a bug with the code under test.
func links(t testing.TB, sb *nstest.Sandbox) map[string]string {
	t.Helper()
	out := sb.Run(t, sb.Path, "ip", "-j", "-d", "link", "show")
	var ls []struct {
		Name  string `json:"ifname"`
		Alias string `json:"ifalias"`
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("ip -j -d link show in %s: %v\n%s", sb.Path, err, out)
	}
	m := map[string]string{}
	for _, l := range ls {
		m[l.Name] = l.Alias
	}
	return m
}
