package main

// A dockerd of the test's own, for the Docker integration tests: Debian's
// docker.io, started with nsenter in the sandbox's host namespace (where
// the agent runs), --bridge=none and no iptables, its data, exec root,
// socket and pid file in a directory of its own; stopped, unmounted and
// removed when the test ends. No image can be pulled: importBusybox makes
// one from busybox-static.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// dockerImage is the image importBusybox makes.
const dockerImage = "mvt-busybox:latest"

type dockerd struct {
	t       testing.TB
	sb      *nstest.Sandbox
	bin     string // dockerd
	cli     string // docker
	dir     string // daemon.json, data/, exec/, docker.sock, docker.pid, dockerd.log
	sock    string
	cmd     *exec.Cmd
	done    chan error
	running bool
}

// TestDockerd runs the tests with a dockerd of their own one after the
// other (every dockerd finds plugins in the one /run/docker/plugins, and
// two running containers at once would take the CPU the others' timings
// need), in parallel with the package's other tests: it takes one of go
// test's parallel slots, where each test waiting its turn would take one.
func TestDockerd(t *testing.T) {
	t.Parallel()
	for _, st := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Docker", testDocker},
		{"DockerDiff", testDockerDiff},
		{"DockerNames", testDockerNames},
		{"DockerDHCP", testDockerDHCP},
		{"RAIgnoreWire", testRAIgnoreWire},
	} {
		t.Run(st.name, st.fn)
	}
}

// dockerTools returns dockerd, the docker CLI and a static busybox, or
// skips the test saying what is missing.
func dockerTools(t *testing.T) (daemon, cli, busybox string) {
	t.Helper()
	nstest.RequireRoot(t)
	daemon, err := exec.LookPath("dockerd")
	if err != nil {
		t.Skip("Docker tests need dockerd: apt-get install docker.io")
	}
	// Debian's client next to Debian's daemon, before any other in PATH.
	cli = "/usr/bin/docker"
	if _, err := os.Stat(cli); err != nil {
		if cli, err = exec.LookPath("docker"); err != nil {
			t.Skip("Docker tests need the docker client: apt-get install docker.io")
		}
	}
	if busybox, err = nstest.StaticBusybox(); err != nil {
		t.Skipf("Docker tests build their image from a static busybox: %v", err)
	}
	return daemon, cli, busybox
}

func randName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// startDockerd starts a dockerd in the sandbox's host namespace and waits
// until it answers; it is stopped and its files removed when the test ends.
func startDockerd(t testing.TB, sb *nstest.Sandbox, daemon, cli string) *dockerd {
	t.Helper()
	dir, err := os.MkdirTemp("", "mvt-dk") // short: unix socket paths live under it
	if err != nil {
		t.Fatal(err)
	}
	d := &dockerd{t: t, sb: sb, bin: daemon, cli: cli, dir: dir, sock: filepath.Join(dir, "docker.sock")}
	t.Cleanup(d.destroy)
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	return d
}

// start runs dockerd and waits until its API answers (up to 60 s: with the
// plugin socket gone, dockerd looks for the plugin for 15 s per network).
func (d *dockerd) start() {
	d.t.Helper()
	logf, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command("nsenter", "--net="+d.sb.Path, "--", d.bin,
		"--config-file", filepath.Join(d.dir, "daemon.json"),
		"--data-root", filepath.Join(d.dir, "data"), "--exec-root", filepath.Join(d.dir, "exec"),
		"-H", "unix://"+d.sock, "--pidfile", filepath.Join(d.dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--shutdown-timeout=2")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start dockerd: %v", err)
	}
	d.running = true
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, code := d.docker("version", "--format", "{{.Server.Version}}"); code == 0 {
			return
		}
		select {
		case err := <-d.done:
			d.running = false
			d.t.Fatalf("dockerd exited during start: %v\n%s", err, d.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	d.t.Fatalf("dockerd did not answer within 60s\n%s", d.logTail())
}

// stop sends SIGTERM and waits for dockerd to exit (it stops its
// containers first).
func (d *dockerd) stop() {
	d.t.Helper()
	if !d.running {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("dockerd did not stop on SIGTERM within 60s\n%s", d.logTail())
	}
	d.running = false
}

// destroy stops dockerd, ends what it left running (processes that name
// its directory), unmounts what it left mounted and removes its directory.
func (d *dockerd) destroy() {
	if d.running {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		d.running = false
	}
	if err := nstest.Reap(d.dir); err != nil { // containerd and the shims
		d.t.Errorf("cleanup: %v", err)
	}
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Errorf("cleanup: %v", err)
	}
}

func (d *dockerd) logTail() string {
	data, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var keep []string
	for _, l := range lines {
		if !strings.Contains(l, "module=grpc") && !strings.Contains(l, "loading plugin") {
			keep = append(keep, l)
		}
	}
	return "dockerd log (tail):\n" + strings.Join(keep[max(0, len(keep)-40):], "\n")
}

// docker runs the client against this dockerd: stdout, stderr, exit code.
func (d *dockerd) docker(args ...string) (string, string, int) {
	return runCmd(90*time.Second, d.cli, append([]string{"-H", "unix://" + d.sock}, args...)...)
}

// importBusybox makes dockerImage: busybox-static and its applets.
func (d *dockerd) importBusybox(busybox string) {
	d.t.Helper()
	rootfs, err := nstest.BusyboxTar(busybox)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command(d.cli, "-H", "unix://"+d.sock, "import", "-", dockerImage)
	cmd.Stdin = bytes.NewReader(rootfs)
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("docker import: %v\n%s", err, out)
	}
}
