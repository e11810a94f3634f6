package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRunInteractiveShell: `mvlan run --net NET` with no command opens a
// shell inside the new container, as `docker run -it ... /bin/sh` does; its
// exit code passes through, and --rm removes the container afterwards.
func TestRunInteractiveShell(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	name := e.name("sh")
	cmd := exec.Command(mvlanBin, "--socket", e.a.socket, "run", "-it", "--rm", "--name", name, "--net=pub_net", "--ip=172.16.86.33")
	cmd.Env = append(os.Environ(), "SHELL=/bin/sh")
	cmd.Stdin = strings.NewReader("ip -br addr show eth0\nip route\nexit 3\n")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: %v, want the shell's 3\n%s", err, out)
	}
	mustContain(t, "shell output", string(out), "172.16.86.33/24", "default via 172.16.86.1")
	if netnsExists(name) {
		t.Fatalf("--rm left /run/netns/%s", name)
	}
	if _, ok := e.endpoint(name); ok {
		t.Fatalf("--rm left endpoint %s", name)
	}
}
