package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// TestGuardFresh: an endpoint made ready is looked at once by the fresh
// pass, which gives its namespace an ID; the next check does not look at
// it again as new. One busy then is looked at by the next check; one not
// ready, or queued while no guard runs, not at all.
func TestGuardFresh(t *testing.T) {
	k := &countingDatapath{inspected: map[string]int{}}
	net := &network{ID: "n1", eps: map[string]*entry{}}
	net.cur.Store(&netName{name: "n1"})
	ens := make([]*entry, 4)
	for i := range ens {
		id := fmt.Sprintf("e%d", i)
		ens[i] = &entry{ep: endpoint{ID: id, Name: id, Netns: fmt.Sprintf("/run/netns/c%d", i), NetnsInode: uint64(1000 + i), Ifindex: 2, State: Ready}}
		net.eps[id] = ens[i]
	}
	ens[2].ep.State = Creating
	a := &Engine{host: numberedHost{}, dp: k, ns: linksOnly{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{"n1": net}}
	g := &guardState{nsid: map[uint64]int{}, byID: map[int]uint64{}, marked: map[uint64]bool{}, looked: map[string]uint64{}}

	a.fresh.add(net, ens[3]) // no guard yet: not kept
	kick := a.fresh.start()
	for _, en := range ens[:3] {
		a.fresh.add(net, en)
	}
	select {
	case <-kick:
	default:
		t.Fatal("adding to the queue did not wake the guard")
	}
	ens[1].busy.Lock()
	a.guardFresh(context.Background(), g)
	ens[1].busy.Unlock()
	if want := map[string]int{"/run/netns/c0": 1}; fmt.Sprint(k.inspected) != fmt.Sprint(want) {
		t.Fatalf("the fresh pass looked at %v, want %v", k.inspected, want)
	}
	if id, ok := g.nsid[1000]; !ok || id != 0 {
		t.Fatalf("the fresh endpoint's namespace has ID %d (%v), want 0: its notifications would not be heard", id, ok)
	}
	if !g.marked[1001] {
		t.Fatal("the busy endpoint's namespace is not marked for the next check")
	}

	clear(k.inspected)
	g.tick = 19 // the next check is number 20: nobody's turn in the rolling pass
	a.guardCheck(context.Background(), g)
	if want := map[string]int{"/run/netns/c1": 1, "/run/netns/c3": 1}; fmt.Sprint(k.inspected) != fmt.Sprint(want) {
		t.Fatalf("the check after the fresh pass looked at %v, want %v (the busy one, and the one queued with no guard, new to it)", k.inspected, want)
	}
	a.fresh.stop()
	a.fresh.add(net, ens[0])
	if got := a.fresh.take(); len(got) != 0 {
		t.Fatalf("a stopped queue kept %d endpoints", len(got))
	}
}
