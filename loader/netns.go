package loader

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nsfile"
)

// NetnsCookie returns the cookie of the network namespace at netnsPath (a
// bind mount such as /run/netns/NAME or /proc/PID/ns/net; "" is the
// caller's own): the kernel's unique, never reused identifier of a netns,
// read with getsockopt(SO_NETNS_COOKIE) on a socket opened in it. Endpoint
// keys are {cookie, ifindex}.
func NetnsCookie(netnsPath string) (uint64, error) {
	var fd int
	err := inNetns(netnsPath, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("netns cookie of %q: socket: %w", netnsPath, err)
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("netns cookie of %q: %w", netnsPath, err)
	}
	return v, nil
}

// inNetns runs fn on a locked OS thread that has entered the network
// namespace at path ("" runs fn where the caller is). Sockets and BPF links
// made by fn stay usable afterwards. If the thread cannot go back to its own
// namespace it stays locked, and Go discards it when the goroutine ends.
func inNetns(path string, fn func() error) (err error) {
	if path == "" {
		return fn()
	}
	target, err := nsfile.Open(path)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	defer func() {
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			err = errors.Join(err, fmt.Errorf("return from netns %s: %w", path, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// openNetns returns an fd of the namespace at path for netlink sockets
// (go-tc's Config.NetNS), or 0 (the caller's namespace) for "".
func openNetns(path string) (fd int, closeFn func(), err error) {
	if path == "" {
		return 0, func() {}, nil
	}
	f, err := nsfile.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("open netns: %w", err)
	}
	return int(f.Fd()), func() { f.Close() }, nil
}
