package link

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPacketSocketRetried: the parent's packet socket that could not be
// made (EMFILE) is tried again at the next announcement, made once, kept,
// and after Close none is made or used.
func TestPacketSocketRetried(t *testing.T) {
	var h Host
	calls := 0
	var made int
	h.pkt.open = func() (int, error) {
		calls++
		if calls == 1 {
			return -1, unix.EMFILE
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		unix.Close(fds[1])
		made = fds[0]
		return made, nil
	}
	if err := h.sendOnParent(1, nil); !errors.Is(err, unix.EMFILE) || !strings.Contains(err.Error(), "packet socket") {
		t.Fatalf("first announcement: %v; want the EMFILE of the packet socket", err)
	}
	for i := range 3 {
		if err := h.sendOnParent(1, nil); err != nil {
			t.Fatalf("announcement %d after the failure: %v", i+2, err)
		}
	}
	if calls != 2 || !h.pkt.made || h.pkt.fd != made {
		t.Fatalf("the socket was tried %d times (made %v, fd %d of %d); want twice, kept", calls, h.pkt.made, h.pkt.fd, made)
	}
	if err := h.closePacketSocket(); err != nil {
		t.Fatal(err)
	}
	if err := h.sendOnParent(1, nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("announcement after Close: %v; want an error", err)
	}
	if calls != 2 {
		t.Errorf("a socket was made after Close (%d calls)", calls)
	}
}
