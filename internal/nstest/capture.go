package nstest

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Capture receives every frame on one link of a namespace, from the moment
// it is made, through an AF_PACKET socket (tcpdump is not needed).
type Capture struct {
	fd int
}

// NewCapture starts capturing on link ifName in namespace ns; the socket is
// closed when the test ends.
func NewCapture(t testing.TB, ns, ifName string) *Capture {
	t.Helper()
	return NewCaptureOf(t, ns, ifName, unix.ETH_P_ALL)
}

// NewCaptureOf is NewCapture for the frames of one ethertype (ETH_P_ALL:
// every frame). A socket bound to one ethertype is served after the
// link's TC ingress, as the stack is: it sees only the frames the
// ingress programs passed (one for all is served before TC).
func NewCaptureOf(t testing.TB, ns, ifName string, ethertype uint16) *Capture {
	t.Helper()
	var fd int
	err := In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		proto := htons(ethertype)
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", ifName, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &Capture{fd: fd}
}

// Wait returns the first frame (Ethernet header included) for which match
// is true, or an error if none arrives within timeout.
func (c *Capture) Wait(timeout time.Duration, match func(frame []byte) bool) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, errors.New("no matching frame before the timeout")
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, err
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
