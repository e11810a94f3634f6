package loader

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nsfile"
	"github.com/mvlan/mvlan/nsthread"
)

// nsGetID is NS_GET_ID, _IOR(NSIO, 0xd, __u64) (Linux 6.18): the 64-bit
// ID of the namespace an nsfs file refers to, which for a network
// namespace is its cookie. Asked on the file already open, it spares the
// entry into the namespace that SO_NETNS_COOKIE needs.
const nsGetID = 0x8008b70d

// idIsCookie reports whether this kernel answers NS_GET_ID with the
// cookie: found once, by both ways on a namespace made for it (not the
// host's, whose two numbers could agree by chance). If that cannot be
// found (the namespace not made within probeTimeout, no file left), the
// process keeps to the entry into the namespace, which is never wrong.
var idIsCookie = sync.OnceValue(func() bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	same, err := nsthread.Fresh(ctx, 0, func() (bool, error) {
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return false, err
		}
		defer f.Close()
		id, err := nsID(int(f.Fd()))
		if err != nil {
			return false, err
		}
		c, err := cookieHere()
		return err == nil && c == id, err
	})
	return err == nil && same
})

// probeTimeout bounds idIsCookie's namespace, made while the first cookie
// is asked for.
const probeTimeout = 2 * time.Second

// nsID asks the namespace file fd for its ID (NS_GET_ID).
func nsID(fd int) (uint64, error) {
	var id uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetID, uintptr(unsafe.Pointer(&id))); errno != 0 {
		return 0, errno
	}
	return id, nil
}

// cookieByID is the cookie of the namespace at path read with NS_GET_ID;
// ok is false where the kernel has no such answer.
func cookieByID(path string) (cookie uint64, ok bool, err error) {
	if path == "" || !idIsCookie() {
		return 0, false, nil
	}
	f, err := nsfile.Open(path)
	if err != nil {
		return 0, true, err
	}
	defer f.Close()
	if typ, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err != nil || typ != unix.CLONE_NEWNET {
		return 0, true, fmt.Errorf("%s is not a network namespace", path)
	}
	id, err := nsID(int(f.Fd()))
	return id, true, err
}
