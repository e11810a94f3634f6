package link

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// NetnsEvents hears the link and tc notifications (RTNLGRP_LINK,
// RTNLGRP_TC) of every network namespace that has an ID in the Host's
// namespace (NetnsID), through one netlink socket with
// NETLINK_LISTEN_ALL_NSID: no socket per namespace, and no reference that
// would keep a container's namespace alive. It tells where something
// happened, not what: the caller looks.
//
// The socket is not in Go's poller: that one is edge-triggered, and would
// wake a thread for every notification that arrives, also while the
// listener is busy reading the ones before it. The listener polls the
// socket itself, and only when it has found it empty (waitReadable).
type NetnsEvents struct {
	mu     sync.Mutex // held by Next; Close takes it to close the fds
	fd     int
	wake   int // eventfd: Close ends a wait
	closed atomic.Bool
	buf    []byte
	oob    []byte

	woke   time.Time // when a wait for notifications last ended
	paused bool      // the queue was found empty and the pause taken
	waits  int       // times the listener waited for a notification (tests)
}

// wakeEvery bounds how often the listener wakes for notifications. A
// namespace that sends them one at a time in a loop (a container setting
// a link's alias over and over) would wake it once each: a context switch
// per notification, about 40 % of a CPU measured. Instead, once the queue
// is empty, the listener lets notifications gather in the socket's buffer
// (4 MiB asked, which the kernel doubles: about 2000 link notifications)
// until wakeEvery has passed since it last woke, and reads them together.
// The tamper check looks once a second, so the pause delays nothing it
// does.
const wakeEvery = 10 * time.Millisecond

// notifHead is how much of a notification is read: where it came from is
// in its control message; its body matters only for an RTM_DELNSID (28
// bytes). The rest of a link notification (about 1.5 KiB) is not copied.
const notifHead = 512

// NetnsEvent is one notification's origin: the ID of its namespace in
// the Host's, or Overflow when the kernel dropped notifications (the
// socket's buffer was full) and any namespace may have changed. Gone: the
// namespace with ID NSID is gone (RTM_DELNSID, sent when it is destroyed).
type NetnsEvent struct {
	NSID     int
	Overflow bool
	Gone     bool
}

// ListenNetns opens the listener in h's namespace. Close it.
func (h *Host) ListenNetns() (_ *NetnsEvents, err error) {
	var fd int
	err = nsthread.Do(h.ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns events: socket: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := listenAll(fd); err != nil {
		return nil, fmt.Errorf("netns events: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("netns events: eventfd: %w", err)
	}
	return &NetnsEvents{fd: fd, wake: wake, buf: make([]byte, notifHead), oob: make([]byte, 256)}, nil
}

func listenAll(fd int) error {
	// A burst (a container's links coming and going) must not overflow
	// it; FORCE needs CAP_NET_ADMIN, which the agent has.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_LISTEN_ALL_NSID, 1); err != nil {
		return fmt.Errorf("NETLINK_LISTEN_ALL_NSID: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK | unix.RTMGRP_TC | 1<<(unix.RTNLGRP_NSID-1)}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// Next blocks until a notification comes and returns its origin. One
// from the Host's own namespace has no ID and is skipped. It returns
// os.ErrClosed once Close is called.
func (e *NetnsEvents) Next() (NetnsEvent, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		n, oobn, err := e.recv()
		switch {
		case errors.Is(err, unix.ENOBUFS):
			return NetnsEvent{Overflow: true}, nil
		case errors.Is(err, os.ErrClosed):
			return NetnsEvent{}, err
		case err != nil:
			return NetnsEvent{}, fmt.Errorf("netns events: %w", err)
		}
		// An RTM_DELNSID names an ID in the namespace that sent it: only
		// one of the Host's own (no ID attached) names an ID the Host
		// gave. One from another namespace (a container deleting a
		// namespace it gave an ID) is a notification from that namespace.
		id, remote := nsidOf(e.oob[:oobn])
		if remote {
			return NetnsEvent{NSID: id}, nil
		}
		if gone, ok := goneNSID(e.buf[:n]); ok {
			return NetnsEvent{NSID: gone, Gone: true}, nil
		}
	}
}

// recv reads one notification. When none is queued, it first pauses
// until wakeEvery has passed since the last wake, then waits.
func (e *NetnsEvents) recv() (n, oobn int, err error) {
	for {
		if e.closed.Load() {
			return 0, 0, os.ErrClosed
		}
		n, oobn, _, _, err = unix.Recvmsg(e.fd, e.buf, e.oob, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			if e.paused {
				e.paused, e.woke = false, time.Now()
			}
			return n, oobn, err
		case !e.paused:
			e.paused = true
			time.Sleep(wakeEvery - time.Since(e.woke))
		default:
			e.waits++
			if err := e.waitReadable(); err != nil {
				return 0, 0, err
			}
		}
	}
}

// waitReadable blocks until the socket has a notification or Close is
// called (os.ErrClosed).
func (e *NetnsEvents) waitReadable() error {
	fds := []unix.PollFd{{Fd: int32(e.fd), Events: unix.POLLIN}, {Fd: int32(e.wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 || e.closed.Load() {
			return os.ErrClosed
		}
		return nil // readable, or an error recvmsg will report
	}
}

// goneNSID finds an RTM_DELNSID notification and the ID it names.
func goneNSID(b []byte) (int, bool) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		// struct rtgenmsg, padded to 4, then the attributes.
		if m.Header.Type != unix.RTM_DELNSID || len(m.Data) < 4 {
			continue
		}
		for a := m.Data[4:]; len(a) >= 4; {
			l, typ := int(binary.NativeEndian.Uint16(a)), binary.NativeEndian.Uint16(a[2:])
			if l < 4 || l > len(a) {
				break
			}
			if typ == unix.NETNSA_NSID && l >= 8 {
				return int(int32(binary.NativeEndian.Uint32(a[4:]))), true
			}
			a = a[min(len(a), (l+3)&^3):]
		}
	}
	return 0, false
}

// nsidOf finds the NETLINK_LISTEN_ALL_NSID control message: the ID of
// the namespace a notification came from.
func nsidOf(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_NETLINK && m.Header.Type == unix.NETLINK_LISTEN_ALL_NSID && len(m.Data) >= 4 {
			return int(int32(binary.NativeEndian.Uint32(m.Data))), true
		}
	}
	return 0, false
}

// Close stops the listener; a blocked Next returns os.ErrClosed. It waits
// for a Next under way to return (at most wakeEvery).
func (e *NetnsEvents) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; 1 either way is not 0
	_, werr := unix.Write(e.wake, one[:])
	e.mu.Lock()
	defer e.mu.Unlock()
	return errors.Join(werr, unix.Close(e.fd), unix.Close(e.wake))
}

// WatchNetns sends the origin of each notification (NetnsEvents.Next) to
// fn until ctx is done or the listener fails (the error is returned).
// listening, if not nil, is called once the listener is subscribed: what
// happens from then on reaches fn.
func (h *Host) WatchNetns(ctx context.Context, listening func(), fn func(NetnsEvent)) error {
	ev, err := h.ListenNetns()
	if err != nil {
		return err
	}
	if listening != nil {
		listening()
	}
	stop := context.AfterFunc(ctx, func() { ev.Close() })
	defer func() {
		if stop() {
			ev.Close()
		}
	}()
	for {
		e, err := ev.Next()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		fn(e)
	}
}
