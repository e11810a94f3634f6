package link

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/nsthread"
)

// NetnsEvents hears the link and tc notifications (RTNLGRP_LINK,
// RTNLGRP_TC) of every network namespace that has an ID in the Host's
// namespace (NetnsID), through one netlink socket with
// NETLINK_LISTEN_ALL_NSID: no socket per namespace, and no reference that
// would keep a container's namespace alive. It tells where something
// happened, not what: the caller looks.
type NetnsEvents struct {
	f   *os.File
	buf []byte
	oob []byte
}

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
func (h *Host) ListenNetns() (*NetnsEvents, error) {
	var fd int
	err := nsthread.Do(h.ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns events: socket: %w", err)
	}
	if err := listenAll(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns events: %w", err)
	}
	return &NetnsEvents{f: os.NewFile(uintptr(fd), "netns-events"), buf: make([]byte, 64<<10), oob: make([]byte, 256)}, nil
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
	rc, err := e.f.SyscallConn()
	if err != nil {
		return NetnsEvent{}, err
	}
	for {
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), e.buf, e.oob, 0)
			return rerr != unix.EAGAIN
		})
		switch {
		case err != nil:
			return NetnsEvent{}, err
		case errors.Is(rerr, unix.ENOBUFS):
			return NetnsEvent{Overflow: true}, nil
		case rerr != nil:
			return NetnsEvent{}, fmt.Errorf("netns events: %w", rerr)
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

// Close stops the listener; a blocked Next returns.
func (e *NetnsEvents) Close() error { return e.f.Close() }

// WatchNetns sends the origin of each notification (NetnsEvents.Next) to
// fn until ctx is done or the listener fails (the error is returned).
func (h *Host) WatchNetns(ctx context.Context, fn func(NetnsEvent)) error {
	ev, err := h.ListenNetns()
	if err != nil {
		return err
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
