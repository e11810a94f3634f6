package store

import (
	"testing"

	"github.com/mvlan/mvlan/api"
)

// openWithNetwork opens a store in a directory of its own with network
// pub_net (parent eth0) stored.
func openWithNetwork(t *testing.T) (string, *Store, api.Network) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := api.Network{ID: NewID(), Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting}
	if err := s.CreateNetwork(n); err != nil {
		t.Fatal(err)
	}
	return dir, s, n
}

// reopen closes s and opens the store in dir again; the new one is
// closed when the test ends.
func reopen(t *testing.T, s *Store, dir string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
