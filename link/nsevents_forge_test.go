package link_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestWatchNetnsGoneNotForged: a namespace the host watches (C) assigns its own ID 5 to a
// namespace D and deletes D: does the host's listener report "ID 5 gone"?
func TestWatchNetnsGoneNotForged(t *testing.T) {
	nstest.RequireRoot(t)
	sb := nstest.NewSandbox(t)
	c, d := sb.Netns(t, "c"), sb.Netns(t, "d")
	h := openHost(t, sb)
	cid, err := h.NetnsID(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan link.NetnsEvent, 64)
	go func() { _ = h.WatchNetns(ctx, func(ev link.NetnsEvent) { got <- ev }) }()
	time.Sleep(100 * time.Millisecond)
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("nsenter", "--net="+c, "ip", "netns", "set", filepath.Base(d), "5")
	run("ip", "netns", "del", filepath.Base(d))
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
