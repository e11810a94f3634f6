package nstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Etcd is an etcd server (Debian's etcd-server) run by a test on
// 127.0.0.1 ports, with its data in a temporary directory; it is killed
// when the test ends.
type Etcd struct {
	URL  string   // etcd://127.0.0.1:PORT, as mvlan's --cluster takes it
	TLS  *EtcdTLS // the files of a TLS server (StartEtcdTLS); nil: plain
	name string   // the member's name, unique: the server that answers is this one
	data string
	ns   string
	cmd  *exec.Cmd
	done chan struct{}
	argv []string
	cli  string // HOST:PORT of clients
	mu   sync.Mutex
	log  bytes.Buffer
}

// StartEtcd starts an etcd on 127.0.0.1 and waits until it serves. The
// test skips when the etcd binary is missing (scripts/deps.sh installs it).
// Its ports are picked free and taken again if another process bound them
// first (the server, not the port, is checked: its member name).
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	return startEtcd(t, "", "127.0.0.1", nil)
}

// StartEtcdTLS is StartEtcd with TLS: clients must present a certificate
// of the test's CA (MakeEtcdTLS).
func StartEtcdTLS(t testing.TB) *Etcd {
	t.Helper()
	return startEtcd(t, "", "127.0.0.1", MakeEtcdTLS(t))
}

// StartEtcdIn starts an etcd in namespace ns (a path) on ip:2379 (peers:
// ip:2380), for agents in other namespaces that reach ip.
func StartEtcdIn(t testing.TB, ns, ip string) *Etcd {
	t.Helper()
	return startEtcd(t, ns, ip, nil)
}

// StartEtcdInTLS is StartEtcdIn with TLS (MakeEtcdTLS, for ip too).
func StartEtcdInTLS(t testing.TB, ns, ip string) *Etcd {
	t.Helper()
	return startEtcd(t, ns, ip, MakeEtcdTLS(t, net.ParseIP(ip)))
}

func startEtcd(t testing.TB, ns, ip string, tl *EtcdTLS) *Etcd {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server; scripts/deps.sh does)")
	}
	e := &Etcd{name: "t" + randHex(), data: t.TempDir(), ns: ns, TLS: tl}
	t.Cleanup(e.kill)
	for try := 0; ; try++ {
		client, peer := net.JoinHostPort(ip, "2379"), net.JoinHostPort(ip, "2380")
		if ns == "" {
			client, peer = freePort(t), freePort(t)
		}
		e.configure(client, peer)
		err := e.start(t)
		if err == nil {
			return e
		}
		if ns != "" || try == 4 || !strings.Contains(e.Log(), "address already in use") {
			t.Fatalf("etcd on %s: %v: %s", client, err, e.Log())
		}
		t.Logf("etcd on %s: a port was taken meanwhile; trying others", client)
	}
}

// configure sets the command line for client and peer HOST:PORTs.
func (e *Etcd) configure(client, peer string) {
	scheme := "http://"
	if e.TLS != nil {
		scheme = "https://"
	}
	e.URL, e.cli = "etcd://"+client, client
	e.argv = []string{"etcd", "--data-dir", e.data, "--name", e.name,
		"--listen-client-urls", scheme + client, "--advertise-client-urls", scheme + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", e.name + "=http://" + peer, "--log-level", "error"}
	if e.TLS != nil {
		e.argv = append(e.argv, "--cert-file", e.TLS.ServerCert, "--key-file", e.TLS.ServerKey,
			"--trusted-ca-file", e.TLS.CA, "--client-cert-auth")
	}
	if e.ns != "" { // nsenter execs etcd: the process is etcd's, for Stop and Cont
		e.argv = append([]string{"nsenter", "--net=" + e.ns, "--"}, e.argv...)
	}
}

// start runs the server and waits until it serves; an error if it
// exited or did not serve within 20 s.
func (e *Etcd) start(t testing.TB) error {
	t.Helper()
	e.mu.Lock()
	e.log.Reset()
	e.mu.Unlock()
	e.cmd = exec.Command(e.argv[0], e.argv[1:]...)
	e.cmd.Stdout, e.cmd.Stderr = &lockedWriter{&e.mu, &e.log}, &lockedWriter{&e.mu, &e.log}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	e.done = done
	go func() {
		_ = e.cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("etcd exited")
		case <-time.After(50 * time.Millisecond):
		}
		if e.serves() {
			return nil
		}
	}
	e.kill()
	return fmt.Errorf("etcd did not serve within 20 s")
}

// serves reports whether this server (its member name) answers clients.
func (e *Etcd) serves() bool {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		dial := func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		}
		if e.ns == "" {
			return c, dial()
		}
		return c, In(e.ns, dial)
	}}
	scheme := "http://"
	if e.TLS != nil {
		scheme = "https://"
		tc, err := e.TLS.clientConfig()
		if err != nil {
			return false
		}
		tr.TLSClientConfig = tc
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: time.Second}
	resp, err := cl.Post(scheme+e.cli+"/v3/cluster/member/list", "application/json", strings.NewReader("{}"))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var list struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return false
	}
	return len(list.Members) == 1 && list.Members[0].Name == e.name
}

func (e *Etcd) kill() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGCONT)
	_ = e.cmd.Process.Kill()
	<-e.done
}

// Restart kills the server (SIGKILL) and starts it again on its data.
func (e *Etcd) Restart(t testing.TB) {
	t.Helper()
	e.kill()
	if err := e.start(t); err != nil {
		t.Fatalf("etcd restart on %s: %v: %s", e.cli, err, e.Log())
	}
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
