package nstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Etcd is an etcd server (Debian's etcd-server) run by a test on
// 127.0.0.1 ports, with its data in a temporary directory; it is killed
// when the test ends.
type Etcd struct {
	URL    string // etcd://127.0.0.1:PORT, as mvlan's --cluster takes it
	cmd    *exec.Cmd
	argv   []string
	ns     string
	client string
	mu     sync.Mutex
	log    bytes.Buffer
}

// StartEtcd starts an etcd on 127.0.0.1 and waits until it serves. The
// test skips when the etcd binary is missing (scripts/deps.sh installs it).
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	return startEtcd(t, "", freePort(t), freePort(t))
}

// StartEtcdIn starts an etcd in namespace ns (a path) on ip:2379 (peers:
// ip:2380), for agents in other namespaces that reach ip.
func StartEtcdIn(t testing.TB, ns, ip string) *Etcd {
	t.Helper()
	return startEtcd(t, ns, net.JoinHostPort(ip, "2379"), net.JoinHostPort(ip, "2380"))
}

func startEtcd(t testing.TB, ns, client, peer string) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server; scripts/deps.sh does)")
	}
	e := &Etcd{URL: "etcd://" + client}
	argv := []string{bin, "--data-dir", t.TempDir(), "--name", "t",
		"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "t=http://" + peer, "--log-level", "error"}
	if ns != "" { // nsenter execs etcd: the process is etcd's, for Stop and Cont
		argv = append([]string{"nsenter", "--net=" + ns, "--"}, argv...)
	}
	e.argv, e.ns, e.client = argv, ns, client
	t.Cleanup(func() {
		if e.cmd != nil && e.cmd.Process != nil {
			_ = e.cmd.Process.Signal(syscall.SIGCONT)
			_ = e.cmd.Process.Kill()
			_ = e.cmd.Wait()
		}
	})
	e.start(t)
	return e
}

// start runs the server and waits until it serves.
func (e *Etcd) start(t testing.TB) {
	t.Helper()
	e.cmd = exec.Command(e.argv[0], e.argv[1:]...)
	e.cmd.Stdout, e.cmd.Stderr = &lockedWriter{&e.mu, &e.log}, &lockedWriter{&e.mu, &e.log}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if dialIn(e.ns, e.client) == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("etcd did not serve on %s within 20 s: %s", e.client, e.Log())
}

// Restart kills the server (SIGKILL) and starts it again on its data.
func (e *Etcd) Restart(t testing.TB) {
	t.Helper()
	_ = e.cmd.Process.Kill()
	_ = e.cmd.Wait()
	e.start(t)
}

func dialIn(ns, addr string) error {
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if ns == "" {
		return dial()
	}
	return In(ns, dial)
}

// Stop freezes the server (SIGSTOP): connections stay open, nothing is
// answered, as in a partition.
func (e *Etcd) Stop() error { return e.cmd.Process.Signal(syscall.SIGSTOP) }

// Cont thaws it (SIGCONT).
func (e *Etcd) Cont() error { return e.cmd.Process.Signal(syscall.SIGCONT) }

// Log is what the server wrote.
func (e *Etcd) Log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
