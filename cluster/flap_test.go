package cluster

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// waitKeyGone waits until host h's liveness key is gone from etcd.
func waitKeyGone(t *testing.T, c *Client, h string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := c.cli.Get(context.Background(), hostKey(h))
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the liveness key of %s is still there after 10 s", h)
		}
	}
}

// TestFlapRestartsTheGrace: host A dies and B sees it dead; A comes back
// for one lease while B does not look, and dies again. B must count the
// grace from A's second death, not its first: it reclaims A's block only
// TTL + grace after A's last renewal, when A's fence (TTL + grace/2) has
// stopped A from handing out the block's addresses.
func TestFlapRestartsTheGrace(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.81.0.0/24")}
	const ttl, grace = 2 * time.Second, 4 * time.Second
	a := newLiveHost(t, e.URL, "hostA", cfg, ttl, grace, "")
	b := newLiveHost(t, e.URL, "hostB", cfg, ttl, grace, "")
	ctx := context.Background()
	pf, err := a.p.Allocate(ctx, "a0")
	if err != nil {
		t.Fatal(err)
	}
	a.p.Release(pf.Addr()) // the block stays A's
	a.stop()
	silent := func(context.Context, []netip.Addr) ([]netip.Addr, error) { return nil, nil }
	waitKeyGone(t, b.c, "hostA")
	if _, err := b.p.Reclaim(ctx, silent); err != nil { // B sees A dead
		t.Fatal(err)
	}
	time.Sleep(grace / 2)
	renewed := time.Now()
	if err := a.c.beat(ctx); err != nil { // A back, with a new lease
		t.Fatal(err)
	}
	waitKeyGone(t, b.c, "hostA") // and gone again, B not looking meanwhile
	for {
		n, err := b.p.Reclaim(ctx, silent)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Since(renewed) > ttl+grace+5*time.Second {
			t.Fatalf("A's block not reclaimed %v after its last renewal", time.Since(renewed))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(renewed); d < ttl+grace || a.c.fence() == nil {
		t.Fatalf("B reclaimed A's block %v after A's last renewal (want >= TTL %v + grace %v); A's fence: %v (want down)", d, ttl, grace, a.c.fence())
	}
}
