package nsthread

import (
	"context"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nsfile"
)

// DoPath is Do for the namespace at path (a bind mount such as
// /run/netns/NAME, or /proc/PID/ns/net; opened with nsfile.Open, so a path
// that names something else is refused without waiting on it); "" runs fn
// where the caller is.
func DoPath(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	f, err := nsfile.Open(path)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer f.Close()
	if err := Do(netns.NsHandle(f.Fd()), fn); err != nil {
		return fmt.Errorf("in netns %s: %w", path, err)
	}
	return nil
}

// Fresh runs fn on a locked OS thread that has moved into a new, empty
// network namespace (and into the other new namespaces flags asks for, e.g.
// unix.CLONE_NEWNS); the caller's namespaces are never touched and no other
// goroutine ever runs there. Afterwards a thread that only changed network
// namespace goes back to its own and returns to the pool; one that cannot,
// or that has a mount namespace (and a root and working directory) of its
// own, stays locked and Go discards it. The new network namespace lives on
// only while something holds it (a bind mount, a socket). If ctx ends
// first, Fresh returns ctx's error and fn finishes on its own.
func Fresh[T any](ctx context.Context, flags int, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		var back bool
		r.v, r.err, back = freshHere(flags, fn)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- r
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// freshHere runs fn in new namespaces on the locked calling thread and
// reports whether the thread is back in its own network namespace with
// nothing else changed.
func freshHere[T any](flags int, fn func() (T, error)) (v T, err error, back bool) {
	own, err := netns.Get() // this thread's
	if err != nil {
		return v, fmt.Errorf("get current netns: %w", err), true
	}
	defer own.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET | flags); err != nil {
		return v, fmt.Errorf("new namespace: %w", err), netns.Set(own) == nil
	}
	v, err = fn()
	return v, err, flags == 0 && netns.Set(own) == nil
}
