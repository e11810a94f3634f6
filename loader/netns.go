package loader

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nsfile"
	"github.com/mvlan/mvlan/nsthread"
)

// NetnsCookie returns the cookie of the network namespace at netnsPath (a
// bind mount such as /run/netns/NAME or /proc/PID/ns/net; "" is the
// caller's own): the kernel's unique, never reused identifier of a netns,
// read with NS_GET_ID on its file where the kernel answers that with the
// cookie (6.18), else with getsockopt(SO_NETNS_COOKIE) on a socket opened
// in it. Endpoint keys are {cookie, ifindex}.
func NetnsCookie(netnsPath string) (uint64, error) {
	v, ok, err := cookieByID(netnsPath) // no entry into the namespace, where the kernel can
	if ok {
		if err != nil {
			return 0, fmt.Errorf("netns cookie of %q: %w", netnsPath, err)
		}
		return v, nil
	}
	err = nsthread.DoPath(netnsPath, func() error {
		var err error
		v, err = cookieHere()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("netns cookie of %q: %w", netnsPath, err)
	}
	return v, nil
}

// cookieHere is the cookie of the calling thread's network namespace.
func cookieHere() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: socket: %w", err)
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: %w", err)
	}
	return v, nil
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
