package link

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestPrivateProc: the agent gets a procfs instance of its own, in which
// the calling thread's sysctls are found (else every sysctl write falls
// back to /proc, whose lookups grow with the host's namespaces).
func TestPrivateProc(t *testing.T) {
	nstest.RequireRoot(t)
	m, err := privateProc()
	if err != nil {
		t.Fatalf("privateProc: %v", err)
	}
	defer unix.Close(m)
	fd, err := unix.Openat(m, "sys/net/ipv6/conf/lo/disable_ipv6", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("net.ipv6.conf.lo.disable_ipv6 in the private instance: %v", err)
	}
	unix.Close(fd)
}

// TestProcPoolRecycles: an instance serves procLookups lookups, then a
// new one takes over, and the old one is unmounted (its fd closed) once
// its last user releases it, not before.
func TestProcPoolRecycles(t *testing.T) {
	nstest.RequireRoot(t)
	var pp procPool
	first, err := pp.acquire()
	if err != nil {
		t.Fatal(err)
	}
	for range procLookups - 1 {
		p, err := pp.acquire()
		if err != nil || p != first {
			t.Fatalf("acquire within %d lookups: %v, %v; want the first instance", procLookups, p, err)
		}
		pp.release(p)
	}
	next, err := pp.acquire()
	if err != nil || next == first {
		t.Fatalf("acquire number %d: %v, %v; want a new instance", procLookups+1, next, err)
	}
	defer pp.release(next)
	time.Sleep(20 * time.Millisecond)
	if _, err := unix.FcntlInt(uintptr(first.fd), unix.F_GETFD, 0); err != nil {
		t.Fatalf("the retired instance was closed while still in use: %v", err)
	}
	pp.release(first)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := unix.FcntlInt(uintptr(first.fd), unix.F_GETFD, 0); err != nil {
			break // closed (the number may be reused later; not here)
		}
		if time.Now().After(deadline) {
			t.Fatal("the retired instance is still open 2 s after its last release")
		}
	}
}
