package link

import (
	"testing"

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
