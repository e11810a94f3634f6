package store

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
)

// TestUpdateEndpointLater: a change applied later costs no commit of its
// own when another commit follows (it goes with it, first: a later
// change of the same record wins), commits by itself after lazyFlush
// when none does, and is on disk after Close.
func TestUpdateEndpointLater(t *testing.T) {
	dir, s, n := openWithNetwork(t)
	ep := func(name string, last byte, state string) api.Endpoint {
		return api.Endpoint{ID: "id-" + name, Name: name, NetworkID: n.ID, State: state,
			Addrs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, 86, last}), 24)}}
	}
	state := func(s *Store, name string) string {
		eps, err := s.Endpoints()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range eps {
			if e.Name == name {
				return e.State
			}
		}
		return "(none)"
	}
	commits := func() int {
		s.commit.mu.Lock()
		defer s.commit.mu.Unlock()
		return s.commit.commits
	}
	for _, name := range []string{"c1", "c2", "c3"} {
		if err := s.CreateEndpoint(ep(name, 10, "creating")); err != nil {
			t.Fatal(err)
		}
	}
	before := commits()
	s.UpdateEndpointLater(ep("c1", 10, "ready"))
	s.UpdateEndpointLater(ep("c2", 10, "ready"))
	if err := s.UpdateEndpoint(ep("c2", 10, "removing")); err != nil {
		t.Fatal(err)
	}
	if c := commits() - before; c != 1 {
		t.Errorf("%d commits for two later changes and one change; want 1", c)
	}
	if got := state(s, "c1") + "," + state(s, "c2"); got != "ready,removing" {
		t.Errorf("states c1,c2 = %s; want ready,removing (the later change went first)", got)
	}
	before = commits()
	s.UpdateEndpointLater(ep("c3", 10, "ready"))
	time.Sleep(lazyFlush)
	for deadline := time.Now().Add(5 * time.Second); commits() == before && time.Now().Before(deadline); { // a loaded host
		time.Sleep(lazyFlush / 10)
	}
	time.Sleep(2 * lazyFlush) // no second one
	if c := commits() - before; c != 1 || state(s, "c3") != "ready" {
		t.Errorf("alone: %d commits, c3 %s; want 1 commit after %v, ready", c, state(s, "c3"), lazyFlush)
	}
	s.UpdateEndpointLater(ep("c1", 10, "removing"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := state(s, "c1"); got != "removing" {
		t.Errorf("after Close and Open c1 is %s; want removing (Close flushes)", got)
	}
}
