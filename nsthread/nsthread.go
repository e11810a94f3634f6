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

// setns enters a namespace (a variable: the tests make it fail).
var setns = netns.Set

// Do runs fn on a locked OS thread that has entered the network namespace
// ns, then returns the thread to its own namespace. The thread is not the
// caller's: if it cannot return, it stays locked and Go discards it with
// the goroutine Do ran fn on, and the caller, which never left its own
// namespace, goes on there. A panic in fn is raised again in the caller.
func Do(ns netns.NsHandle, fn func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() { done <- r }()
		r.err = doHere(ns, func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					r.panicked, r.value = true, v
				}
			}()
			return fn()
		})
	}()
	r := <-done
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

// doHere is Do on the calling goroutine, which it locks to its thread for
// good should the thread not get back to its namespace.
func doHere(ns netns.NsHandle, fn func() error) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	if err := setns(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	if err := fn(); err != nil {
		return errors.Join(err, back(orig))
	}
	return back(orig)
}

// back returns the locked thread to its namespace orig and unlocks it; if
// it cannot, the thread stays locked (and dies with its goroutine).
func back(orig netns.NsHandle) error {
	if err := setns(orig); err != nil {
		return fmt.Errorf("return to own netns: %w", err)
	}
	runtime.UnlockOSThread()
	return nil
}
