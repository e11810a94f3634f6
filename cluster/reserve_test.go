package cluster

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// TestReserveDoesNotWaitForEtcd: with etcd frozen, a Sync that gives a
// released claim back waits for etcd's timeout; meanwhile an attach
// served from a block the host holds (Reserve, TakeFree) does not wait
// for it.
func TestReserveDoesNotWaitForEtcd(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.84.0.0/24")}
	h := newHost(t, e.URL, "hostA", "rw", cfg, 28)
	ctx := context.Background()
	if _, err := h.p.Allocate(ctx, "ep0"); err != nil {
		t.Fatal(err)
	}
	x := netip.MustParseAddr("10.84.0.200")
	if _, err := h.p.Request(ctx, x, "ex"); err != nil {
		t.Fatal(err)
	}
	h.p.Release(x) // pending: the next Sync deletes its claim
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		h.p.Sync(ctx)
	}()
	time.Sleep(100 * time.Millisecond) // Sync waits for etcd
	t0 := time.Now()
	err := h.p.Reserve(ctx)
	a, ok := h.p.TakeFree("ep1")
	took := time.Since(t0)
	if err := e.Cont(); err != nil {
		t.Fatal(err)
	}
	<-synced
	if err != nil || !ok || took > 500*time.Millisecond {
		t.Errorf("Reserve and TakeFree from a held block while a Sync waits for frozen etcd: %v, %s %v, after %v; want an address at once", err, a, ok, took)
	}
}

// TestConcurrentClaimsOfOneAddress: attaches asking for the same --ip at
// once (Claim, as the engine's Prepare does) each get it checked, none is
// refused as taken by the check of another ("endpoint check"): eight at a
// time, 300 times, inside a block the host holds.
func TestConcurrentClaimsOfOneAddress(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.85.0.0/24")}
	h := newHost(t, e.URL, "hostA", "same", cfg, 28)
	ctx := context.Background()
	first, err := h.p.Allocate(ctx, "ep0")
	if err != nil {
		t.Fatal(err)
	}
	addr := first.Addr().Next()
	errs := make(chan error, 8)
	for range 300 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if err := h.p.Claim(ctx, addr); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatalf("claim of %s beside seven others: %v", addr, err)
		default:
		}
	}
}
