package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
)

// TestGroupCommit: 32 endpoints created at once while the first commit is
// held back are all stored, in far fewer transactions than changes, and a
// duplicate name among them fails alone; reopening the file finds them.
func TestGroupCommit(t *testing.T) {
	dir, s, n := openWithNetwork(t)
	const callers = 32
	queued := make(chan struct{})
	var once sync.Once
	s.commit.beforeCommit = func() { once.Do(func() { <-queued }) } // hold the first group until everyone waits
	eps := make([]api.Endpoint, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		name := fmt.Sprintf("c%d", i)
		if i == callers-1 {
			name = "c0" // taken by the first: must fail, alone
		}
		eps[i] = api.Endpoint{ID: NewID(), Name: name, NetworkID: n.ID,
			Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, 86, byte(10 + i)}), 24)}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateEndpoint(eps[i])
		}()
	}
	waitQueued(s, callers-1) // one is the leader, held in beforeCommit
	close(queued)
	wg.Wait()
	// Of the two callers named c0, whichever came second fails, alone.
	winner, loser := 0, callers-1
	if errs[0] != nil {
		winner, loser = loser, winner
	}
	for i, err := range errs {
		if wantErr := i == loser; (err != nil) != wantErr || (wantErr && !errors.Is(err, ErrExists)) {
			t.Errorf("create %s (caller %d): %v; want error: %v (ErrExists)", eps[i].Name, i, err, wantErr)
		}
	}
	if c := s.commit.commits; c > 3 {
		t.Errorf("%d changes took %d commits; want them grouped (at most 3)", callers, c)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != callers-1 {
		t.Fatalf("after reopening: %d endpoints; want %d", len(got), callers-1)
	}
	for _, e := range got {
		if e.Name == "c0" && e.ID != eps[winner].ID {
			t.Errorf("c0 is %s; want the one that did not fail, %s", e.ID, eps[winner].ID)
		}
	}
}

// waitQueued waits until n changes wait behind the running commit.
func waitQueued(s *Store, n int) {
	for {
		s.commit.mu.Lock()
		q := len(s.commit.queue)
		s.commit.mu.Unlock()
		if q >= n {
			return
		}
		runtime.Gosched()
	}
}

// TestLaterSurvivesFailedWrite: changes applied later (an endpoint's
// "ready", a removal's delete) that a failed write (ENOSPC, EIO) took
// with it are applied with the next commit once the disk takes writes
// again, not lost; the change the write was for fails, alone.
func TestLaterSurvivesFailedWrite(t *testing.T) {
	dir, s, n := openWithNetwork(t)
	a := api.Endpoint{ID: NewID(), Name: "a", NetworkID: n.ID, State: "creating"}
	b := api.Endpoint{ID: NewID(), Name: "b", NetworkID: n.ID, State: "ready"}
	for _, e := range []api.Endpoint{a, b} {
		if err := s.CreateEndpoint(e); err != nil {
			t.Fatal(err)
		}
	}
	var logged bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&logged, nil)) // before any deferred change arms the flush
	a.State = "ready"
	s.UpdateEndpointLater(a)
	s.DeleteEndpointLater(b.ID)
	failing := errors.New("no space left on device")
	s.commit.failCommit = func() error { return failing }
	c := api.Endpoint{ID: NewID(), Name: "c", NetworkID: n.ID, State: "creating"}
	if err := s.CreateEndpoint(c); !errors.Is(err, failing) {
		t.Fatalf("create c while writes fail: %v, want %v", err, failing)
	}
	s.commit.failCommit = nil
	if !strings.Contains(logged.String(), "state write failed") || !strings.Contains(logged.String(), "waiting=2") {
		t.Errorf("the failed write was not reported with the 2 changes waiting: %q", logged.String())
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	eps, err := reopen(t, s, dir).Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].ID != a.ID || eps[0].State != "ready" {
		t.Errorf("endpoints after the failed write and a flush: %+v; want a only, ready", eps)
	}
}

// TestCommitLeadHandedOver: the caller whose change starts a group commit
// returns once its group is on disk, though others queued meanwhile: the
// first of them commits the next group. Before, the first caller
// committed group after group while changes kept coming, holding whatever
// locks it held meanwhile.
func TestCommitLeadHandedOver(t *testing.T) {
	_, s, n := openWithNetwork(t)
	defer s.Close()
	started := []chan struct{}{make(chan struct{}), make(chan struct{})}
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	calls := 0
	s.commit.beforeCommit = func() { // called by one leader at a time
		if calls < 2 {
			close(started[calls])
			<-release[calls]
		}
		calls++
	}
	create := func(name string) chan error {
		done := make(chan error, 1)
		go func() {
			done <- s.CreateEndpoint(api.Endpoint{ID: NewID(), Name: name, NetworkID: n.ID, State: "ready"})
		}()
		return done
	}
	a := create("a")
	<-started[0] // a leads its group
	b, c := create("b"), create("c")
	waitQueued(s, 2)
	close(release[0])
	select {
	case err := <-a:
		if err != nil {
			t.Fatalf("create a: %v", err)
		}
	case <-time.After(5 * time.Second):
		close(release[1])
		t.Fatal("a did not return while the group of b and c waited to commit: a commits it")
	}
	<-started[1] // b or c leads the next group
	close(release[1])
	for _, done := range []chan error{b, c} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if eps, err := s.Endpoints(); err != nil || len(eps) != 3 {
		t.Fatalf("endpoints %+v, %v; want a, b and c", eps, err)
	}
}
