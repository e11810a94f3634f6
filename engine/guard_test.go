package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// numberedHost gives /run/netns/cN the ID N.
type numberedHost struct{ Host }

// countingDatapath counts the endpoints the guard looks at.
type countingDatapath struct {
	Datapath
	inspected map[string]int // netns path -> looks
	screened  string         // the netns path whose TCX screen fails
}

func (numberedHost) NetnsID(path string) (int, error) {
	var id int
	_, err := fmt.Sscanf(path, "/run/netns/c%d", &id)
	return id, err
}
func (k *countingDatapath) InspectEndpoint(_ context.Context, path string, _ int) ([]loader.Finding, error) {
	k.inspected[path]++
	return nil, nil
}
func (k *countingDatapath) TCXTampered(_ context.Context, path string, _ uint64, _ int) bool {
	return path == k.screened
}

// TestGuardLooksWhereNeeded: the tamper check looks at a new endpoint
// once, then only where a notification came from, at every endpoint
// after an overflow, at those whose TCX screen fails, and at each one
// within guardRounds checks in the rolling pass.
func TestGuardLooksWhereNeeded(t *testing.T) {
	const n = 40 // inodes 1000..1039: rolling turns 40..59 and 0..19, none in 20..39
	k := &countingDatapath{inspected: map[string]int{}}
	net := &network{ID: "n1", eps: map[string]*entry{}}
	net.cur.Store(&netName{name: "n1"})
	for i := range n {
		id := fmt.Sprintf("e%d", i)
		net.eps[id] = &entry{ep: endpoint{ID: id, Name: id, Netns: fmt.Sprintf("/run/netns/c%d", i), NetnsInode: uint64(1000 + i), Ifindex: 2, State: Ready}}
	}
	a := &Engine{host: numberedHost{}, dp: k, ns: linksOnly{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{"n1": net}}
	g := &guardState{nsid: map[uint64]int{}, byID: map[int]uint64{}, marked: map[uint64]bool{}, looked: map[string]uint64{}}
	check := func() int {
		clear(k.inspected)
		a.guardCheck(context.Background(), g)
		total := 0
		for _, c := range k.inspected {
			total += c
		}
		return total
	}
	if got := check(); got != n {
		t.Fatalf("first check looked %d times, want %d (each new endpoint once)", got, n)
	}
	g.tick = 19 // the next check is number 20: nobody's turn
	if got := check(); got != 0 {
		t.Fatalf("a quiet check looked %d times, want 0", got)
	}
	g.note(link.NetnsEvent{NSID: 7})
	g.note(link.NetnsEvent{NSID: 9999}) // not an endpoint's namespace
	if got := check(); got != 1 || k.inspected["/run/netns/c7"] != 1 {
		t.Fatalf("after a notification from c7 looked at %v, want c7 once", k.inspected)
	}
	g.tcx, k.screened = true, "/run/netns/c3"
	if got := check(); got != 1 || k.inspected["/run/netns/c3"] != 1 {
		t.Fatalf("after a foreign program looked at %v, want c3 (whose screen fails) once", k.inspected)
	}
	g.tcx = false
	g.note(link.NetnsEvent{Overflow: true})
	if got := check(); got != n {
		t.Fatalf("after an overflow looked %d times, want %d", got, n)
	}
	seen := map[string]bool{}
	for range guardRounds {
		if got := check(); got > 1 {
			t.Fatalf("the rolling pass looked %d times in one check, want at most 1", got)
		}
		for p := range k.inspected {
			seen[p] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("the rolling pass looked at %d endpoints in %d checks, want all %d", len(seen), guardRounds, n)
	}
}

// TestGuardInodeReused: the kernel gives a new namespace the inode of one
// that is gone (the lowest free number), often at once: a container
// removed and another run within one check. The new endpoint's namespace
// must get its own ID, so that its notifications are heard.
func TestGuardInodeReused(t *testing.T) {
	k := &countingDatapath{inspected: map[string]int{}}
	net := &network{ID: "n1", eps: map[string]*entry{}}
	net.cur.Store(&netName{name: "n1"})
	ready := func(id, path string) {
		net.eps = map[string]*entry{id: {ep: endpoint{ID: id, Name: id, Netns: path, NetnsInode: 1020, Ifindex: 2, State: Ready}}}
	}
	a := &Engine{host: numberedHost{}, dp: k, ns: linksOnly{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{"n1": net}}
	g := &guardState{nsid: map[uint64]int{}, byID: map[int]uint64{}, marked: map[uint64]bool{}, looked: map[string]uint64{}}
	ready("old", "/run/netns/c1")
	a.guardCheck(context.Background(), g) // tick 1
	ready("new", "/run/netns/c2")         // c1 gone, c2 has its inode
	a.guardCheck(context.Background(), g) // tick 2: new is looked at once
	clear(k.inspected)
	g.note(link.NetnsEvent{NSID: 2})
	a.guardCheck(context.Background(), g) // tick 3: nobody's rolling turn (1020%60 = 0)
	if k.inspected["/run/netns/c2"] != 1 {
		t.Fatalf("a notification from the new namespace (ID 2) looked at %v, want c2 once", k.inspected)
	}
}

// floodingHost sends many notifications from namespace ID 7, then one
// from 3, when told.
type floodingHost struct {
	numberedHost
	flood chan chan struct{}
}

func (h floodingHost) WatchNetns(ctx context.Context, listening func(), fn func(link.NetnsEvent)) error {
	listening()
	select {
	case done := <-h.flood:
		for range 5000 {
			fn(link.NetnsEvent{NSID: 7})
		}
		fn(link.NetnsEvent{NSID: 3})
		close(done)
	case <-ctx.Done():
	}
	<-ctx.Done()
	return nil
}

// floodDatapath starts the flood from inside the first look at c0 and
// waits for it: the notifications come while a check is under way.
type floodDatapath struct {
	countingDatapath
	mu   sync.Mutex
	host floodingHost
	once sync.Once
}

func (k *floodDatapath) ForeignPrograms() bool         { return false }
func (k *floodDatapath) ForeignAttaches() bool         { return false }
func (k *floodDatapath) WatchTCX() error               { return nil }
func (k *floodDatapath) ForgetLingering() (int, error) { return 0, nil }

func (k *floodDatapath) InspectEndpoint(ctx context.Context, path string, ifindex int) ([]loader.Finding, error) {
	k.once.Do(func() {
		done := make(chan struct{})
		k.host.flood <- done
		<-done
	})
	k.mu.Lock()
	k.inspected[path]++
	k.mu.Unlock()
	return nil, nil
}

// TestGuardFlood: a container making thousands of notifications while a
// check is under way (it needs only CAP_NET_ADMIN in its namespace) has
// its own namespace looked at, not every endpoint (what an overflow
// costs), and hides no other namespace's notification.
func TestGuardFlood(t *testing.T) {
	const n = 10 // inodes 1040..1049: rolling turns 20..29
	h := floodingHost{flood: make(chan chan struct{})}
	k := &floodDatapath{countingDatapath: countingDatapath{inspected: map[string]int{}}, host: h}
	net := &network{ID: "n1", eps: map[string]*entry{}}
	net.cur.Store(&netName{name: "n1"})
	for i := range n {
		id := fmt.Sprintf("e%d", i)
		net.eps[id] = &entry{ep: endpoint{ID: id, Name: id, Netns: fmt.Sprintf("/run/netns/c%d", i), NetnsInode: uint64(1040 + i), Ifindex: 2, State: Ready}}
	}
	a := &Engine{host: h, dp: k, ns: linksOnly{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{"n1": net}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.guard(ctx, 20*time.Millisecond) }()
	looks := func() int {
		k.mu.Lock()
		defer k.mu.Unlock()
		total := 0
		for _, c := range k.inspected {
			total += c
		}
		return total
	}
	deadline := time.Now().Add(5 * time.Second)
	for looks() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(60 * time.Millisecond) // a few more checks, none a rolling turn of these
	cancel()
	<-done
	k.mu.Lock()
	defer k.mu.Unlock()
	for p, c := range k.inspected {
		if want := 1; p == "/run/netns/c7" || p == "/run/netns/c3" {
			if c < 2 {
				t.Errorf("%s looked at %d times, want again after its notifications", p, c)
			}
		} else if c != want {
			t.Errorf("%s looked at %d times, want %d (the first look): the flood made the guard look at everything", p, c, want)
		}
	}
}

// flakyHost fails the first NetnsID of each namespace.
type flakyHost struct {
	numberedHost
	asked map[string]bool
}

func (h *flakyHost) NetnsID(path string) (int, error) {
	if !h.asked[path] {
		h.asked[path] = true
		return 0, errors.New("busy")
	}
	return h.numberedHost.NetnsID(path)
}

// TestGuardRegisterAgain: a namespace that got no ID at the endpoint's
// first look is asked again at its rolling turn, so that its
// notifications are heard from then on, not only every guardRounds checks.
func TestGuardRegisterAgain(t *testing.T) {
	k := &countingDatapath{inspected: map[string]int{}}
	net := &network{ID: "n1", eps: map[string]*entry{}}
	net.cur.Store(&netName{name: "n1"})
	net.eps["e1"] = &entry{ep: endpoint{ID: "e1", Name: "e1", Netns: "/run/netns/c1", NetnsInode: 1022, Ifindex: 2, State: Ready}}
	a := &Engine{host: &flakyHost{asked: map[string]bool{}}, dp: k, ns: linksOnly{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{"n1": net}}
	g := &guardState{nsid: map[uint64]int{}, byID: map[int]uint64{}, marked: map[uint64]bool{}, looked: map[string]uint64{}}
	for range 3 { // ticks 1..3: the first look (no ID), then its rolling turn (1022%60 = 2)
		a.guardCheck(context.Background(), g)
	}
	clear(k.inspected)
	g.note(link.NetnsEvent{NSID: 1})
	a.guardCheck(context.Background(), g)
	if k.inspected["/run/netns/c1"] != 1 {
		t.Fatalf("a notification from c1 (ID 1) after its rolling turn looked at %v, want c1 once", k.inspected)
	}
}

// TestHeardGone: a namespace heard gone (RTM_DELNSID) with an ID the
// guard gave is handed to the sweep by its inode, its mapping kept (the
// kernel may have given the ID to a live namespace since); an ID the guard
// never gave is ignored.
func TestHeardGone(t *testing.T) {
	g := &guardState{nsid: map[uint64]int{1007: 7, 1008: 8}, byID: map[int]uint64{7: 1007, 8: 1008}, marked: map[uint64]bool{}}
	h := &heard{}
	h.add(link.NetnsEvent{NSID: 7, Gone: true})
	h.add(link.NetnsEvent{NSID: 9, Gone: true})
	gone := h.take(g)
	if len(gone) != 1 || gone[0] != 1007 {
		t.Fatalf("take: gone %v, want [1007]", gone)
	}
	if g.nsid[1007] != 7 || g.byID[7] != 1007 || g.nsid[1008] != 8 {
		t.Fatalf("after take: nsid %v byID %v; want both kept (the ID may be a live namespace's by now)", g.nsid, g.byID)
	}
	if len(g.marked) != 0 {
		t.Fatalf("a namespace gone marked %v for a look", g.marked)
	}
	if again := h.take(g); len(again) != 0 {
		t.Fatalf("second take: %v, want nothing", again)
	}
}

// TestSweepTurns: the sweep looks closely (the cookie too) at each
// namespace once per round of ceil(ready/sweepBatch) sweeps, listening or
// not, and at one heard gone in the next sweep; by its inode at the others
// only when namespaces may go unheard.
func TestSweepTurns(t *testing.T) {
	const ready = 10*sweepBatch - 3 // 10 sweeps a round
	for _, listening := range []bool{true, false} {
		s := &sweeper{ready: ready, listening: listening}
		seen := map[uint64]int{}
		for i := range 10 {
			if i == 7 {
				s.heardGone(5)
			}
			how := s.turn()
			n := 0
			for ino := range uint64(ready) {
				switch how(ino) {
				case lookCookie:
					seen[ino]++
					n++
				case lookSkip:
					if !listening {
						t.Fatalf("listening %v, sweep %d skips namespace %d; want each looked at by its inode at least", listening, i, ino)
					}
				}
			}
			if n > sweepBatch+1 {
				t.Fatalf("listening %v, sweep %d looks closely at %d namespaces, want at most %d", listening, i, n, sweepBatch+1)
			}
		}
		for ino := range uint64(ready) {
			want := 1
			if ino == 5 {
				want = 2 // its turn (sweep 4), and heard gone (sweep 7)
			}
			if seen[ino] != want {
				t.Fatalf("listening %v: namespace %d looked at closely %d times in a round, want %d", listening, ino, seen[ino], want)
			}
		}
	}
}

// TestSweepAllWithoutGuard: with no listener for namespaces going (the
// guard off, --tamper-check 0), each sweep looks at every namespace; with
// one, the sweep after lost notifications does, and the next does not.
func TestSweepAllWithoutGuard(t *testing.T) {
	all := func(s *sweeper) bool {
		how := s.turn()
		for ino := range uint64(10 * sweepBatch) {
			if how(ino) == lookSkip {
				return false
			}
		}
		return true
	}
	if s := (&sweeper{ready: 10 * sweepBatch}); !all(s) {
		t.Fatal("a sweep with no listener did not look at every namespace")
	}
	s := &sweeper{ready: 10 * sweepBatch, listening: true}
	s.lookAll()
	if !all(s) {
		t.Fatal("the sweep after lost notifications did not look at every namespace")
	}
	if all(s) {
		t.Fatal("the sweep after that looked at every namespace again")
	}
}

// lingerDatapath counts ForgetLingering calls.
type lingerDatapath struct {
	countingDatapath
	forgets int
}

func (k *lingerDatapath) ForeignPrograms() bool { return false }
func (k *lingerDatapath) ForeignAttaches() bool { return false }
func (k *lingerDatapath) WatchTCX() error       { return nil }
func (k *lingerDatapath) ForgetLingering() (int, error) {
	k.forgets++
	return 0, nil
}

// TestSweepForgetsLingering: each sweep (which runs whether or not the
// guard does, --tamper-check 0) has the datapath forget what removals kept
// of links gone since, so that nothing waits for a restart.
func TestSweepForgetsLingering(t *testing.T) {
	k := &lingerDatapath{countingDatapath: countingDatapath{inspected: map[string]int{}}}
	a := &Engine{dp: k, ns: linksOnly{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{}}
	for range 3 {
		a.sweep(context.Background())
	}
	if k.forgets != 3 {
		t.Fatalf("3 sweeps called ForgetLingering %d times, want 3", k.forgets)
	}
}

// TestTableEntryMoving: only a Docker endpoint whose link the runtime is
// still moving (its row under the host's keys) is a moving row; a ready
// one, mvlan's own and a host namespace's (connect) are not.
func TestTableEntryMoving(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    endpoint
		want bool
	}{
		{"Docker, handing off", endpoint{State: Creating}, true},
		{"Docker, ready", endpoint{State: Ready, IfName: "eth0"}, false},
		{"mvlan's namespace, creating", endpoint{State: Creating, OwnsNetns: true, IfName: "eth0"}, false},
		{"connect, creating", endpoint{State: Creating, IfName: "eth1"}, false},
		{"removing", endpoint{State: Removing}, false},
	} {
		if got := tableEntry(&network{}, tc.e).Moving; got != tc.want {
			t.Errorf("%s: Moving %v, want %v", tc.name, got, tc.want)
		}
	}
}

// flakyListener's namespace listener fails on its first opening; the
// second is opened, then subscribed when subscribe is closed, and works
// until its context is done.
type flakyListener struct {
	Host
	mu         sync.Mutex
	calls      int
	open       chan struct{} // closed when the second listener is opened
	subscribe  chan struct{} // closed by the test
	subscribed chan struct{} // closed when it is
}

func (f *flakyListener) WatchNetns(ctx context.Context, listening func(), _ func(link.NetnsEvent)) error {
	f.mu.Lock()
	f.calls++
	calls := f.calls
	f.mu.Unlock()
	if calls == 1 {
		return errors.New("recvmsg: no buffer space")
	}
	if calls == 2 {
		close(f.open)
		select {
		case <-f.subscribe:
			listening()
			close(f.subscribed)
		case <-ctx.Done():
		}
	}
	<-ctx.Done()
	return nil
}

// TestListenNetnsAgain: a namespace listener that fails is opened again;
// meanwhile, and until it is subscribed, every check looks at every
// endpoint (blind), and once it is, the next check does once (what was
// missed), then no more.
func TestListenNetnsAgain(t *testing.T) {
	defer func(w time.Duration) { watchRetry = w }(watchRetry)
	watchRetry = 20 * time.Millisecond
	f := &flakyListener{open: make(chan struct{}), subscribe: make(chan struct{}), subscribed: make(chan struct{})}
	a := &Engine{host: f, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := &heard{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.listenNetns(ctx, h); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case <-f.open:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener was not opened again within 5 s of failing")
	}
	lookAll := func() bool {
		g := &guardState{}
		h.take(g)
		return g.all
	}
	for range 2 {
		if !lookAll() {
			t.Fatal("the listener opened, not yet subscribed: want every check to look at every endpoint")
		}
	}
	close(f.subscribe)
	<-f.subscribed
	if !lookAll() || lookAll() {
		t.Fatal("after the listener came back: want one check that looks at every endpoint, then none")
	}
}
