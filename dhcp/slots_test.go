package dhcp

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestTakeSlot: maxExchanges slots are taken at once; the next waits
// until one is given back, and gives up when its ctx ends.
func TestTakeSlot(t *testing.T) {
	var frees []func()
	for range maxExchanges {
		free, err := takeSlot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		frees = append(frees, free)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := takeSlot(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slot %d of %d: %v, want it to wait until ctx ends", maxExchanges+1, maxExchanges, err)
	}
	got := make(chan error, 1)
	go func() {
		free, err := takeSlot(context.Background())
		if err == nil {
			free()
		}
		got <- err
	}()
	frees[0]()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a slot given back was not taken")
	}
	for _, free := range frees[1:] {
		free()
	}
}

// threads is how many threads the process has (0 after an error, which
// fails t; it may run in any goroutine).
func threads(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Error(err)
	}
	return len(ents)
}

// TestExchangesBoundThreads: many exchanges at once with no server to
// answer (an agent's keepers after a restart with the server down) hold
// no more OS threads than maxExchanges: the others wait for a slot
// outside the namespace, holding none, and give up when their ctx ends.
// Go starts about one more thread for each locked one (to run the rest
// while it blocks), so the process may grow by up to 3 times
// maxExchanges; without the bound it grows by more than n.
func TestExchangesBoundThreads(t *testing.T) {
	nstest.RequireRoot(t)
	_, l := sandbox4(t, "192.168.62.1/24") // no server on the wire
	const n = 8 * maxExchanges
	base := threads(t)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak.Store(max(peak.Load(), int64(threads(t))))
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Go(func() {
			if _, err := Acquire(ctx, l); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	if failed.Load() != n {
		t.Errorf("%d of %d acquires failed, want all: no server answers", failed.Load(), n)
	}
	if grew := int(peak.Load()) - base; grew > 3*maxExchanges {
		t.Errorf("%d exchanges at once grew the process by %d threads (from %d), want at most 3 × %d", n, grew, base, maxExchanges)
	}
	t.Logf("%d exchanges: %d threads at start, %d at most", n, base, peak.Load())
}

// TestFollowUpsTakeNoSlot: with every slot taken (thousands of exchanges
// waiting for a server that is down), the steps after an exchange that
// got its answer still run at once: the address check of the lease and
// a DHCPRELEASE do not queue behind the exchanges for their ctx's time.
func TestFollowUpsTakeNoSlot(t *testing.T) {
	nstest.RequireRoot(t)
	_, l := sandbox4(t, "192.168.62.1/24")
	for range maxExchanges {
		free, err := takeSlot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer free()
	}
	lease := Lease{Addr: netip.MustParsePrefix("192.168.62.50/24"), Server: netip.MustParseAddr("192.168.62.1")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.check(ctx, lease); err != nil {
		t.Errorf("address check with every slot taken: %v; want it run (no host has the address)", err)
	}
	if err := Release(ctx, l, lease); err != nil {
		t.Errorf("DHCPRELEASE with every slot taken: %v; want it sent", err)
	}
}
