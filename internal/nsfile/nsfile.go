// Package nsfile opens namespace files (/proc/PID/ns/net, bind mounts such
// as /run/netns/NAME) given as paths by users, without ever waiting on what
// a path names instead: a FIFO, a socket, a device or a file someone holds
// a lease on is refused without being opened, and a path whose lookup
// hangs (a stuck network or FUSE file system) is given up after a timeout.
package nsfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// nsfsMagic is the statfs type of namespace files (NSFS_MAGIC).
const nsfsMagic = 0x6e736673

// Timeout bounds the lookup of a path in Open.
const Timeout = 2 * time.Second

var (
	// ErrNotNamespace means the path names something else than a
	// namespace file.
	ErrNotNamespace = errors.New("not a namespace")
	// ErrTimeout means the path's lookup did not finish in time.
	ErrTimeout = errors.New("the path did not answer in time")
)

// Open opens the namespace file at path for reading (setns, ioctls),
// giving up after Timeout. Errors from the kernel are *os.PathError.
func Open(path string) (*os.File, error) { return openWithin(path, Timeout, open) }

// openWithin runs open(path) and waits for it at most d. A lookup that
// is given up finishes in the background and its file is closed.
func openWithin(path string, d time.Duration, open func(string) (*os.File, error)) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := open(path)
		ch <- result{f, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.f, r.err
	case <-t.C:
		go func() {
			if r := <-ch; r.f != nil {
				r.f.Close()
			}
		}()
		return nil, fmt.Errorf("%s: %w (waited %v)", path, ErrTimeout, d)
	}
}

// Inode is the inode of the namespace file at path (one namespace has one
// in every mount and PID namespace), giving up after Timeout. It opens
// nothing for reading: a caller that may look the path up may tell.
func Inode(path string) (uint64, error) {
	f, err := openWithin(path, Timeout, lookup)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

// lookup returns path's O_PATH file if it is on nsfs.
func lookup(path string) (*os.File, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(pfd, &fs); err != nil {
		unix.Close(pfd)
		return nil, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if fs.Type != nsfsMagic {
		unix.Close(pfd)
		return nil, fmt.Errorf("%s: %w", path, ErrNotNamespace)
	}
	return os.NewFile(uintptr(pfd), path), nil
}

// open looks path up with O_PATH (which opens nothing: no FIFO waits for
// a writer, no lease is broken), checks the result is on nsfs (lookup),
// and only then opens it for reading through /proc/self/fd.
func open(path string) (*os.File, error) {
	pf, err := lookup(path)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(pf.Fd())), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// MkdirAll makes dir and its missing parents with mode perm whatever the
// process's umask (the agent's unit sets 0077): the directories that hold
// namespaces' files (/run/netns, /etc/netns/NAME) are read by other
// programs (ip netns, a container's non-root processes).
func MkdirAll(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // made meanwhile
		}
		return err
	}
	return os.Chmod(dir, perm)
}
