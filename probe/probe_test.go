package probe

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestInUse probes from the sandbox's eth0 for addresses its wire peer
// has (IPv4 and IPv6) and for addresses no one has: only the first are
// reported, and it takes one round of waiting for the answered ones.
func TestInUse(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "10.9.0.5/24", "dev", "wire0")
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:9::5/64", "dev", "wire0", "nodad")
	sb.Run(t, sb.Path, "ip", "addr", "add", "10.9.0.7/24", "dev", "eth0")
	addrs := []netip.Addr{
		netip.MustParseAddr("10.9.0.5"), netip.MustParseAddr("10.9.0.6"),
		netip.MustParseAddr("fd00:9::5"), netip.MustParseAddr("fd00:9::6"),
	}
	t0 := time.Now()
	got, err := InUse(context.Background(), sb.Path, "eth0", addrs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.9.0.5"), netip.MustParseAddr("fd00:9::5")}
	if !slices.Equal(got, want) {
		t.Fatalf("in use: %v, want %v", got, want)
	}
	t.Logf("4 addresses probed in %v", time.Since(t0))
	// The answering side goes away: nothing answers.
	sb.Run(t, sb.WirePath, "ip", "addr", "flush", "dev", "wire0")
	if got, err := InUse(context.Background(), sb.Path, "eth0", addrs[:1], Options{Tries: 1, Wait: 100 * time.Millisecond}); err != nil || len(got) != 0 {
		t.Fatalf("after the flush: %v %v, want none", got, err)
	}
	if _, err := InUse(context.Background(), sb.Path, "nosuch0", addrs, Options{}); err == nil {
		t.Fatal("probe on a missing link: no error")
	}
}
