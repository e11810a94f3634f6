package link_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestWatchNetns: a link made and a qdisc added and deleted in a
// namespace with an ID reach the host's listener with that ID; the ID
// stays the namespace's.
func TestWatchNetns(t *testing.T) {
	nstest.RequireRoot(t)
	sb := nstest.NewSandbox(t)
	watched, other := sb.Netns(t, "x"), sb.Netns(t, "o")
	h, err := link.OpenHost(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	id, err := h.NetnsID(watched)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := h.NetnsID(watched); err != nil || again != id {
		t.Fatalf("NetnsID again = %d, %v; want %d", again, err, id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan link.NetnsEvent, 64)
	done := make(chan error, 1)
	subscribed := make(chan struct{})
	go func() {
		done <- h.WatchNetns(ctx, func() { close(subscribed) }, func(ev link.NetnsEvent) { got <- ev })
	}()
	select {
	case <-subscribed:
	case err := <-done:
		t.Fatalf("WatchNetns: %v", err)
	}
	sb.Run(t, other, "ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1")
	sb.Run(t, watched, "ip", "link", "add", "d1", "type", "veth", "peer", "name", "d2")
	sb.Run(t, watched, "tc", "qdisc", "add", "dev", "d1", "clsact")
	sb.Run(t, watched, "tc", "qdisc", "del", "dev", "d1", "clsact")
	seen := 0
	for timeout := time.After(3 * time.Second); seen < 3; {
		select {
		case ev := <-got:
			if ev.Overflow {
				t.Fatalf("overflow after a few events")
			}
			if ev.NSID == id {
				seen++ // others: the wire's namespace has an ID (its veth peer is here)
			}
		case <-timeout:
			t.Fatalf("%d events from the watched namespace in 3 s, want at least 3 (link, qdisc add, qdisc del)", seen)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("WatchNetns after cancel: %v", err)
	}
}

// TestWatchNetnsGone: a namespace with an ID, deleted, is heard gone
// with that ID (RTM_DELNSID); one without an ID is not heard at all.
func TestWatchNetnsGone(t *testing.T) {
	nstest.RequireRoot(t)
	sb := nstest.NewSandbox(t)
	watched, other := sb.Netns(t, "g"), sb.Netns(t, "n")
	h := openHost(t, sb)
	id, err := h.NetnsID(watched)
	if err != nil {
		t.Fatal(err)
	}
	got := watch(t, h)
	netnsDel(t, other)
	netnsDel(t, watched)
	for timeout := time.After(5 * time.Second); ; {
		select {
		case ev := <-got:
			if ev.Gone && ev.NSID != id {
				t.Fatalf("heard ID %d gone, want only %d (the other namespace has no ID)", ev.NSID, id)
			}
			if ev.Gone {
				return
			}
		case <-timeout:
			t.Fatalf("namespace with ID %d deleted: not heard gone in 5 s", id)
		}
	}
}

// TestWatchNetnsGoneNotForged: a namespace the host watches (C) gives a
// namespace D its own ID 5 and deletes D; the host's listener must not
// take that for "the host's ID 5 is gone".
func TestWatchNetnsGoneNotForged(t *testing.T) {
	nstest.RequireRoot(t)
	sb := nstest.NewSandbox(t)
	c, d := sb.Netns(t, "c"), sb.Netns(t, "d")
	h := openHost(t, sb)
	cid, err := h.NetnsID(c)
	if err != nil {
		t.Fatal(err)
	}
	got := watch(t, h)
	sb.Run(t, c, "ip", "netns", "set", filepath.Base(d), "5")
	netnsDel(t, d)
	for timeout := time.After(time.Second); ; {
		select {
		case ev := <-got:
			if ev.Gone {
				t.Errorf("forged: %+v (C is %d)", ev, cid)
			}
		case <-timeout:
			return
		}
	}
}

// TestNetnsEventsGathered: a namespace that sends notifications one
// after another (a container setting a link's alias in a loop) is read
// in batches: the listener wakes at most once per WakeEvery, and hears
// every notification.
func TestNetnsEventsGathered(t *testing.T) {
	nstest.RequireRoot(t)
	sb := nstest.NewSandbox(t)
	ns := sb.Netns(t, "l")
	h := openHost(t, sb)
	id, err := h.NetnsID(ns)
	if err != nil {
		t.Fatal(err)
	}
	sb.Run(t, ns, "ip", "link", "add", "d1", "type", "veth", "peer", "name", "d2")
	sb.Run(t, ns, "ip", "link", "set", "d1", "up") // a link that is down sends no alias change
	// Well within the socket's buffer (about 2000 link notifications).
	const n = 1000
	var batch strings.Builder
	for i := range n {
		fmt.Fprintf(&batch, "link set dev d1 alias a%d\n", i)
	}
	file := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(file, []byte(batch.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ev, err := h.ListenNetns()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() }) // a second Close does nothing
	var heard atomic.Int64
	done, all := make(chan error, 1), make(chan struct{})
	go func() {
		for {
			e, err := ev.Next()
			if err != nil {
				done <- err
				return
			}
			if e.Overflow {
				done <- fmt.Errorf("overflow")
				return
			}
			if e.NSID == id && heard.Add(1) == n {
				close(all)
			}
		}
	}()
	before := switches(t)
	start := time.Now()
	sb.Run(t, ns, "ip", "-batch", file)
	select {
	case <-all:
	case <-time.After(5 * time.Second):
	}
	took := time.Since(start)
	switched := switches(t) - before
	ev.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("listener: %v (heard %d)", err, heard.Load())
	}
	if got := heard.Load(); got < n {
		t.Fatalf("heard %d notifications of %d alias changes", got, n)
	}
	most := int(took/link.WakeEvery) + 2
	if w := ev.Waits(); w > most {
		t.Errorf("%d notifications in %v: the listener waited %d times, want at most %d (one per %v)", n, took, w, most, link.WakeEvery)
	}
	// Nor does anything else in the process wake per notification (Go's
	// poller would, for a socket in it: 520 to 960 waits for n = 1000,
	// measured; 56 to 132 without, the exec of ip and the GC among them).
	if switched > n/4 {
		t.Errorf("%d notifications in %v: the process's threads waited %d times, want at most %d", n, took, switched, n/4)
	}
	t.Logf("%d notifications in %v: the listener waited %d times, the process's threads %d times", n, took, ev.Waits(), switched)
}

// switches is the number of times the test's threads waited so far
// (voluntary context switches: a busy machine adds involuntary ones).
func switches(t *testing.T) int {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return int(ru.Nvcsw)
}

// watch starts h's listener until the test ends and returns what it hears,
// once it is subscribed.
func watch(t *testing.T, h *link.Host) <-chan link.NetnsEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan link.NetnsEvent, 64)
	done, subscribed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		_ = h.WatchNetns(ctx, func() { close(subscribed) }, func(ev link.NetnsEvent) {
			select {
			case got <- ev:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-subscribed:
	case <-done:
		t.Fatal("WatchNetns ended before it subscribed")
	}
	return got
}

// netnsDel runs ip netns del on the namespace at path.
func netnsDel(t *testing.T, path string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(path)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", path, err, out)
	}
}
