package agent

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// scrapeNice is the nice value a scrape runs at. A scrape of a host with
// a 4094-VLAN trunk takes a few ms of CPU (1 MB of text); at nice 10 an
// attach that needs the CPU meanwhile gets ~90% of it, and a scrape on a
// host busy with attaches still ends within a Prometheus scrape timeout.
const scrapeNice = 10

// atLowPriority runs fn on an OS thread of its own at nice scrapeNice and
// returns when fn does. The thread is never handed back to the Go
// runtime: it ends with fn's goroutine, and its priority with it.
func atLowPriority(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // not unlocked: the thread exits, niced
		// Per thread on Linux; a failure leaves fn at normal priority.
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), scrapeNice)
		fn()
	}()
	<-done
}
