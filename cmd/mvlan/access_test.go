package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestAgentAccess: the API socket is 0660 root:GROUP when --socket-group
// names a group that exists, so a non-root member (setpriv) uses the CLI
// and a non-member is refused, told the socket's mode and group; it is
// 0600 when the group does not exist, and then even a member is refused,
// told only root may use it.
// Each mutating request is logged with the peer's uid and pid
// (SO_PEERCRED), reads are not. The agent tells $NOTIFY_SOCKET READY=1
// once its API answers and STOPPING=1 on SIGTERM. mvlan version shows
// client, API, agent and kernel.
func TestAgentAccess(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	g, err := user.LookupGroup("users")
	if err != nil {
		t.Skipf("needs the group users: %v", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	notifications := notifySocket(t, filepath.Join(a.dir, "notify.sock"))
	a.env = []string{"NOTIFY_SOCKET=" + filepath.Join(a.dir, "notify.sock")}
	a.flags = []string{"--socket-group", "users"}
	a.start()
	if got := notifications(); got != "READY=1" {
		t.Errorf("notify socket got %q after the API answered, want READY=1", got)
	}
	wantSocket(t, a.socket, 0o660, gid)
	traversable(t, a.socket, mvlanBin)

	member := []string{"--reuid=65534", "--regid=65534", "--groups=" + g.Gid}
	stranger := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	out, errs, code, pid := asUser(a, member, "network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	if code != 0 {
		t.Fatalf("mvlan network create as uid 65534 in group users: exit %d: %s%s", code, out, errs)
	}
	logged := regexp.MustCompile(`msg="api request" method=POST path=/v1/networks peer_uid=65534 peer_gid=65534 peer_pid=` + strconv.Itoa(pid) + `\b`)
	if !logged.MatchString(a.log.String()) {
		t.Errorf("agent log lacks the create by uid 65534 pid %d:\n%s", pid, a.log)
	}
	if _, _, code, _ := asUser(a, member, "network", "ls", "-q"); code != 0 || strings.Contains(a.log.String(), "method=GET") {
		t.Errorf("network ls as a member: exit %d; reads must not be logged:\n%s", code, a.log)
	}
	_, errs, code, _ = asUser(a, stranger, "network", "rm", "pub_net")
	if code != 1 || !strings.Contains(errs, "permission denied") || !strings.Contains(errs, "mode 0660, owner root, group users: members of group users may use it") {
		t.Errorf("network rm as uid 65534 outside users: exit %d, %q; want 1, permission denied and the socket's group users", code, errs)
	}
	if out := a.ok("network", "ls", "--format", "{{.Name}}"); out != "pub_net\n" {
		t.Errorf("after the refused rm, network ls: %q, want pub_net", out)
	}
	wantVersion(t, a)

	a.stop()
	if got := notifications(); got != "STOPPING=1" {
		t.Errorf("notify socket got %q on SIGTERM, want STOPPING=1", got)
	}
	a.flags = []string{"--socket-group", "mvt-no-such-group"}
	a.start()
	wantSocket(t, a.socket, 0o600, 0)
	_, errs, code, _ = asUser(a, member, "network", "ls")
	if code != 1 || !strings.Contains(errs, "permission denied") || !strings.Contains(errs, "mode 0600, owner root: only root may use it") {
		t.Errorf("network ls as uid 65534 on a 0600 socket: exit %d, %q; want 1, permission denied and only root", code, errs)
	}
}

// notifySocket listens on a unixgram socket at path and returns a
// function that waits (5 s) for the next datagram.
func notifySocket(t *testing.T, path string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		buf := make([]byte, 4096)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			return "nothing: " + err.Error()
		}
		return string(buf[:n])
	}
}

func wantSocket(t *testing.T, path string, perm os.FileMode, gid int) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() != perm || int(sys.Gid) != gid || sys.Uid != 0 {
		t.Errorf("socket %s: mode %v, owner %d:%d; want %v, 0:%d", path, st.Mode().Perm(), sys.Uid, sys.Gid, perm, gid)
	}
}

// traversable opens the directories above the paths (the tests' temporary
// directories are 0700) to other users.
func traversable(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		for d := filepath.Dir(p); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			if err := unix.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// asUser runs the CLI under setpriv with the given credentials; it returns
// stdout, stderr, the exit code and the CLI's pid (setpriv execs it).
func asUser(a *agentProc, creds []string, args ...string) (string, string, int, int) {
	var out, errb strings.Builder
	argv := append(append(creds, "--", mvlanBin, "--socket", a.socket), args...)
	cmd := exec.Command("setpriv", argv...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return "", err.Error(), -1, 0
	}
	_ = cmd.Wait()
	return out.String(), errb.String(), cmd.ProcessState.ExitCode(), cmd.Process.Pid
}

// wantVersion: mvlan version names the client, the API, the agent and
// the kernel this test runs on, one line each.
func wantVersion(t *testing.T, a *agentProc) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	out := a.ok("version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"Client:  dev (go", "API:     v1", "Agent:   dev (API v1, go",
		fmt.Sprintf("Kernel:  %s (attach=", unix.ByteSliceToString(u.Release[:]))}
	if len(lines) != len(want) {
		t.Fatalf("mvlan version printed %d lines:\n%s", len(lines), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("mvlan version line %d: %q, want it to start with %q", i+1, lines[i], w)
		}
	}
	if f := a.ok("version", "-f", "{{.Agent.API}} {{.Client.API}}"); f != "v1 v1\n" {
		t.Errorf("mvlan version -f: %q", f)
	}
}
