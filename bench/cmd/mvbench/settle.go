package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// settle waits until the host is quiet again after a phase that deleted
// many namespaces: the kernel destroys them in its own workers (for
// seconds after the last `rm` answered), and the next phase would
// measure that work as its own. Quiet: at most two runnable tasks (the
// fourth field of /proc/loadavg) in five reads 100 ms apart, or 30 s. It
// returns how long it waited.
func settle(ctx context.Context) time.Duration {
	t0 := time.Now()
	quiet := 0
	for quiet < 5 && time.Since(t0) < 30*time.Second && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		if runnable() <= 2 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return time.Since(t0)
}

// runnable is the number of runnable tasks now, from /proc/loadavg
// ("0.50 0.40 0.30 2/345 6789"); 0 if it cannot be read.
func runnable() int {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(f[3], "/", 2)[0])
	return n
}
