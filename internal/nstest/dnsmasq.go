package nstest

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Dnsmasq is a real DHCP server (dnsmasq, Debian's dnsmasq-base) run by a
// test in one of its namespaces, on one link, with a lease file of its
// own. It is stopped when the test ends.
type Dnsmasq struct {
	Leases string // its lease file

	t    testing.TB
	args []string
	log  lockedBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// StartDnsmasq serves DHCP on link ifName of namespace ns (a path), with
// the extra dnsmasq flags (--dhcp-range and the like), and waits until it
// runs. The test is skipped when dnsmasq is not installed.
func StartDnsmasq(t testing.TB, ns, ifName string, flags ...string) *Dnsmasq {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Skip("dnsmasq not installed (Debian: dnsmasq-base)")
	}
	dir := t.TempDir()
	d := &Dnsmasq{t: t, Leases: filepath.Join(dir, "leases")}
	d.args = append([]string{"--net=" + ns, "--", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--user=root", "--bind-interfaces", "--interface=" + ifName, "--pid-file=" + filepath.Join(dir, "pid"),
		"--log-facility=-", "--log-dhcp", "--no-ping", "--dhcp-leasefile=" + d.Leases}, flags...)
	d.Start()
	t.Cleanup(d.Stop)
	return d
}

// Start starts it again after Stop, with its lease file as it was.
func (d *Dnsmasq) Start() {
	d.t.Helper()
	d.cmd = exec.Command("nsenter", d.args...)
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start dnsmasq: %v", err)
	}
	done := make(chan struct{})
	d.done = done
	go func() {
		_ = d.cmd.Wait()
		close(done)
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(d.Leases); err == nil {
			return
		}
		select {
		case <-done:
			d.t.Fatalf("dnsmasq exited at start:\n%s", d.Log())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dnsmasq did not start within 5 s:\n%s", d.Log())
		}
	}
}

// Stop stops it (SIGTERM; SIGCONT, should it be paused) and waits until
// it exited.
func (d *Dnsmasq) Stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Process.Signal(syscall.SIGCONT)
	<-d.done
	d.cmd = nil
}

// Pause freezes it (SIGSTOP): it answers nothing, and what clients send
// meanwhile waits in its socket, to be answered in order on Resume.
func (d *Dnsmasq) Pause() { d.signal(syscall.SIGSTOP) }

// Resume lets it run again after Pause (SIGCONT).
func (d *Dnsmasq) Resume() { d.signal(syscall.SIGCONT) }

func (d *Dnsmasq) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("dnsmasq: %v: %v", sig, err)
	}
}

// Log is what it logged so far (every DHCP exchange: --log-dhcp).
func (d *Dnsmasq) Log() string { return d.log.String() }

// Lines are the fields of the lines of its lease file: EXPIRY MAC ADDRESS
// NAME CLIENT-ID for a DHCPv4 lease, EXPIRY IAID ADDRESS NAME DUID for a
// DHCPv6 one (and "duid" SERVER-DUID once it serves DHCPv6).
func (d *Dnsmasq) Lines() [][]string {
	d.t.Helper()
	data, err := os.ReadFile(d.Leases)
	if err != nil {
		d.t.Fatal(err)
	}
	var lines [][]string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			lines = append(lines, f)
		}
	}
	return lines
}

// Lease returns the MAC of the lease file's line for addr, if it has one.
func (d *Dnsmasq) Lease(addr netip.Addr) (string, bool) {
	d.t.Helper()
	for _, f := range d.Lines() {
		if len(f) >= 3 && f[2] == addr.String() {
			return f[1], true
		}
	}
	return "", false
}

// WaitLease polls the lease file for up to within until it has a lease of
// addr (want) or none (dnsmasq writes the file just after it answers);
// the error, if it did not get there, shows the file and dnsmasq's log.
func (d *Dnsmasq) WaitLease(addr netip.Addr, want bool, within time.Duration) error {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := d.Lease(addr); ok == want {
			return nil
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(d.Leases)
			return fmt.Errorf("lease of %s in dnsmasq's file: %v after %v, want %v; lease file:\n%s\ndnsmasq log:\n%s", addr, !want, within, want, data, d.Log())
		}
	}
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
