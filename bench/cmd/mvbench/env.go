package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

var lookPath = exec.LookPath

// env is one run's scratch space: a random namespace prefix, a temporary
// directory and the clean-up actions, run last-in first-out.
type env struct {
	cfg  config
	base string // "mvt-" + 8 hex digits: every namespace of this run starts with it
	tmp  string

	mu       sync.Mutex
	cleanups []cleanupFn
}

type cleanupFn struct {
	what string
	fn   func() error
}

func newEnv(cfg config) (*env, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "mvbench-")
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, base: "mvt-" + hex.EncodeToString(b[:]), tmp: tmp}
	e.onCleanup("remove "+tmp, func() error {
		if m := mountsUnder(tmp); len(m) > 0 {
			return fmt.Errorf("left in place: still mounted: %s", strings.Join(m, " "))
		}
		return os.RemoveAll(tmp)
	})
	// Last resort, run before the directory goes: any namespace of this run
	// still there (e.g. containers an agent made and nobody removed).
	e.onCleanup("sweep namespaces "+e.base+"-*", e.sweepNetns)
	return e, nil
}

// onCleanup registers fn to run when the benchmark ends.
func (e *env) onCleanup(what string, fn func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, cleanupFn{what, fn})
}

// cleanup runs the registered actions, newest first, and reports failures.
func (e *env) cleanup() {
	e.mu.Lock()
	fns := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		if err := fns[i].fn(); err != nil {
			progress("cleanup: %s: %v", fns[i].what, err)
		}
	}
}

func (e *env) sweepNetns() error {
	matches, err := filepath.Glob(filepath.Join("/run/netns", e.base+"*"))
	if err != nil {
		return err
	}
	var errs []string
	for _, m := range matches {
		if err := delNetns(filepath.Base(m)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// netns creates the namespace e.base-suffix with lo up, deleted at the end,
// and returns its path.
func (e *env) netns(suffix string) (string, error) {
	name := e.base + "-" + suffix
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	e.onCleanup("delete netns "+name, func() error { return delNetns(name) })
	path := filepath.Join("/run/netns", name)
	if _, err := nsRun(path, "ip", "link", "set", "lo", "up"); err != nil {
		return "", err
	}
	return path, nil
}

func delNetns(name string) error {
	out, err := exec.Command("ip", "netns", "del", name).CombinedOutput()
	if err != nil {
		if _, serr := os.Stat(filepath.Join("/run/netns", name)); serr != nil {
			return nil // already gone
		}
		return fmt.Errorf("ip netns del %s: %v: %s", name, err, out)
	}
	return nil
}

// nsRun runs a command in the namespace at path (nsenter --net) and returns
// its combined output; a failure carries the output.
func nsRun(path string, args ...string) (string, error) {
	out, err := nstest.RunErr(path, args...)
	if err != nil {
		return out, fmt.Errorf("in %s: %s: %v: %s", filepath.Base(path), strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	return out, nil
}

// nsRunAll runs several commands in one namespace, stopping at the first
// failure.
func nsRunAll(path string, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := nsRun(path, c...); err != nil {
			return err
		}
	}
	return nil
}

// sandbox is a "host" namespace whose eth0 is a veth with its peer wire0
// in a second namespace, the wire (what nstest.NewSandbox builds).
type sandbox struct {
	host, wire         string // paths
	hostName, wireName string
}

func (e *env) sandbox(tag string) (*sandbox, error) {
	host, err := e.netns(tag + "h")
	if err != nil {
		return nil, err
	}
	wire, err := e.netns(tag + "w")
	if err != nil {
		return nil, err
	}
	s := &sandbox{host: host, wire: wire, hostName: filepath.Base(host), wireName: filepath.Base(wire)}
	return s, s.veth("eth0", "wire0")
}

// veth adds name in the host namespace with its peer in the wire, both up.
func (s *sandbox) veth(name, peer string) error {
	return errorsFirst(
		func() error {
			_, err := nsRun(s.host, "ip", "link", "add", name, "type", "veth", "peer", "name", peer, "netns", s.wireName)
			return err
		},
		func() error { _, err := nsRun(s.host, "ip", "link", "set", name, "up"); return err },
		func() error { _, err := nsRun(s.wire, "ip", "link", "set", peer, "up"); return err },
	)
}

func errorsFirst(fns ...func() error) error {
	for _, fn := range fns {
		if err := fn(); err != nil {
			return err
		}
	}
	return nil
}

// noIPv6 turns IPv6 off in a namespace (mvlan does so on endpoints without
// an IPv6 address; the other set-ups match it).
func noIPv6(path string) error {
	return nsRunAll(path,
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"},
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"})
}

// timed runs a command (not in a namespace) and returns how long it took.
func timed(ctx context.Context, name string, args ...string) (time.Duration, string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return d, out.String(), fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return d, out.String(), nil
}

// unmount detaches a mount point if something is mounted there.
func unmount(dir string) error {
	err := unix.Unmount(dir, unix.MNT_DETACH)
	if err == unix.EINVAL || err == unix.ENOENT {
		return nil // not a mount point (any more)
	}
	return err
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			out = append(out, f[1])
		}
	}
	return out
}
