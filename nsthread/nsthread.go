// Package nsthread runs a function on an OS thread that has entered another
// network namespace (Do, DoPath) or a new, throwaway one (Fresh), and makes
// sure no goroutine ever runs in a namespace it did not ask for: a thread
// goes back to the pool only once it is back in its own namespace. It is
// the one way mvlan's packages (link, loader, doctor) enter a namespace.
// It depends on nothing but the setns and unshare system calls, so that
// the CLI can start a command in a container without linking netlink.
//
// internal/nstest does not use it on purpose: the tests' way into a
// namespace (nsenter, and its own setns) stays independent of the code
// under test, so that a bug here cannot hide itself in a test.
package nsthread

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread that has entered the network namespace
// ns, then returns the thread to its own namespace. If it cannot return, the
// thread stays locked and Go discards it when the goroutine ends.
func Do(ns netns.NsHandle, fn func() error) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	defer func() { // deferred so that a panicking fn restores the thread too
		if rerr := netns.Set(orig); rerr != nil {
			// Leave the thread locked: it dies with this goroutine.
			err = errors.Join(err, fmt.Errorf("return to own netns: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}
