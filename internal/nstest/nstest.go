// Package nstest builds throw-away network namespaces for privileged tests.
//
// Every namespace it makes is named "mvt-" + 8 hex digits (+ a suffix),
// lives at /run/netns/NAME and is deleted by t.Cleanup, whether the test
// passes, fails or panics. Commands run in a namespace through
// `nsenter --net=PATH`, never `ip netns exec` (which would also give them a
// mount namespace of their own). Nothing here touches the caller's own
// network namespace.
//
// The package deliberately does not use the code under test (mvlan's link
// and nsthread packages): namespaces come from iproute2 (but for
// RebornNetns, which must catch a number the kernel frees), and In enters one
// with its own setns, so that a test's witness cannot share a bug with the
// agent's way into a namespace (nsthread).
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("privileged test: needs root (CAP_NET_ADMIN) to create network namespaces")
	}
}

// Sandbox is a host namespace with an Ethernet-like link "eth0" whose other
// end ("wire0") is in a second namespace, the wire.
type Sandbox struct {
	Name, Path         string // the host namespace
	WireName, WirePath string // the wire namespace
}

// NewSandbox creates netns "mvt-<8hex>" (the host) and "mvt-<8hex>-w" (the
// wire) joined by the veth pair eth0 <-> wire0, both up, with lo up in both.
// When the test ends, after every later clean-up (the agent's end), any
// namespace still named "<sandbox>-*" goes too: those the code under test
// made for the sandbox's containers (`mvlan run --name <sandbox>-c1`),
// which outlive an agent killed with its endpoints in place, as they do
// on a real host.
func NewSandbox(t testing.TB) *Sandbox {
	t.Helper()
	RequireRoot(t)
	base := "mvt-" + randHex()
	t.Cleanup(func() { sweep(t, base+"-") })
	s := &Sandbox{Name: base, WireName: base + "-w"}
	s.Path = NewNetns(t, s.Name)
	s.WirePath = NewNetns(t, s.WireName)
	s.Run(t, s.Path, "ip", "link", "set", "lo", "up")
	s.Run(t, s.WirePath, "ip", "link", "set", "lo", "up")
	s.veth(t, "eth0", "wire0")
	return s
}

// NewNetns creates the named namespace "name" with `ip netns add` and
// deletes it when the test ends. It returns its path.
func NewNetns(t testing.TB, name string) string {
	t.Helper()
	RequireRoot(t)
	if !strings.HasPrefix(name, "mvt-") {
		t.Fatalf("nstest: namespace %q must start with mvt-", name)
	}
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { deleteNetns(t, name) })
	return filepath.Join("/run/netns", name)
}

func deleteNetns(t testing.TB, name string) {
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		if _, statErr := os.Stat(filepath.Join("/run/netns", name)); statErr == nil {
			t.Errorf("cleanup: ip netns del %s: %v: %s", name, err, out)
		}
	}
}

// sweep deletes the named namespaces whose names start with prefix.
func sweep(t testing.TB, prefix string) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return // none made, or none left
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			t.Logf("cleanup: namespace %s left by the test: deleted", e.Name())
			deleteNetns(t, e.Name())
		}
	}
}

// Netns creates one more namespace of the sandbox, "<sandbox>-<suffix>"
// (e.g. for a container), deleted with the sandbox. It returns its path.
func (s *Sandbox) Netns(t testing.TB, suffix string) string {
	t.Helper()
	return NewNetns(t, s.Name+"-"+suffix)
}

// AddVeth adds another veth "name" in the host namespace whose peer is in
// the wire namespace, both up (e.g. a second parent for two-network tests).
// It returns the peer's name: "w-" + name.
func (s *Sandbox) AddVeth(t testing.TB, name string) string {
	t.Helper()
	peer := "w-" + name
	if len(peer) > 15 {
		peer = peer[:15]
	}
	s.veth(t, name, peer)
	return peer
}

func (s *Sandbox) veth(t testing.TB, name, peer string) {
	t.Helper()
	s.Run(t, s.Path, "ip", "link", "add", name, "type", "veth", "peer", "name", peer, "netns", s.WireName)
	s.Run(t, s.Path, "ip", "link", "set", name, "up")
	s.Run(t, s.WirePath, "ip", "link", "set", peer, "up")
}

// Run runs a command in namespace ns (a name under /run/netns or a path)
// through nsenter and returns its combined output; it fails the test if the
// command fails.
func (s *Sandbox) Run(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := RunErr(ns, args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

// RunErr runs a command in namespace ns (a name or a path) through nsenter
// and returns its combined output and error.
func RunErr(ns string, args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + nsPath(ns), "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func nsPath(ns string) string {
	if strings.Contains(ns, "/") {
		return ns
	}
	return filepath.Join("/run/netns", ns)
}

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// In runs fn on a locked OS thread that has entered the network namespace
// ns (a name under /run/netns or a path). Sockets fn opens belong to that
// namespace and may be used after In returns. If the thread cannot return
// to its namespace, it stays locked and Go discards it.
func In(ns string, fn func() error) (err error) {
	target, err := unix.Open(nsPath(ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	defer func() { // deferred so that a panicking fn restores the thread too
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			err = errors.Join(err, fmt.Errorf("return from netns %s: %w", ns, rerr))
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// MAC parses an Ethernet address a test gives, failing the test if it is
// none.
func MAC(t testing.TB, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
