package engine

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/loader"
)

// rowsDatapath records the endpoint rows written.
type rowsDatapath struct {
	Datapath
	mu   sync.Mutex
	rows []loader.Endpoint
}

func (d *rowsDatapath) SetEndpoint(ep loader.Endpoint) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rows = append(d.rows, ep)
	return nil
}

// last is the last row written, and how many were.
func (d *rowsDatapath) last() (loader.Endpoint, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.rows) == 0 {
		return loader.Endpoint{}, 0
	}
	return d.rows[len(d.rows)-1], len(d.rows)
}

// TestLeaseProbing: the DHCP check's mark of an endpoint's row is written
// once the endpoint's busy lock is free (not skipped while the tamper
// check or the other family's keeper holds it), kept by any other writer
// of the row meanwhile, and taken off even when the lock is held as the
// check ends (by a goroutine that waits for it).
func TestLeaseProbing(t *testing.T) {
	d := &rowsDatapath{}
	e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", NetnsCookie: 9, Ifindex: 2,
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, State: Ready}
	n := &network{ID: "n1", DatapathID: 1, eps: map[string]*entry{"e1": {ep: e}}}
	a := &Engine{dp: d, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	en := n.eps["e1"]
	probing := a.leaseProbing(n, e.ID)

	en.busy.Lock() // the tamper check, say
	go func() { time.Sleep(50 * time.Millisecond); en.busy.Unlock() }()
	probing(context.Background(), true)
	if row, k := d.last(); k != 1 || !row.Probing || row.Ifindex != 2 {
		t.Fatalf("after the mark: %d rows, last %+v; want one, probing", k, row)
	}
	if row := tableEntry(n, e); !row.Probing {
		t.Fatalf("another writer's row while marked: %+v; want probing", row)
	}

	en.busy.Lock() // held as the check ends
	probing(context.Background(), false)
	if row := tableEntry(n, e); row.Probing {
		t.Fatalf("another writer's row after the check: %+v; want not probing", row)
	}
	en.busy.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		row, k := d.last()
		if k == 2 && !row.Probing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the check, the lock freed: %d rows, last %+v; want a second, not probing", k, row)
		}
		time.Sleep(5 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	en.busy.Lock() // held past the check's deadline: no row, the mark stays for other writers
	probing(ctx, true)
	en.busy.Unlock()
	if _, k := d.last(); k != 2 || !tableEntry(n, e).Probing {
		t.Fatalf("marking past ctx: %d rows, row marked %v; want no new row, marked", k, tableEntry(n, e).Probing)
	}
}
