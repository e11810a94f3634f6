package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/mvlan/mvlan/api"
)

func TestNetworkLifecycle(t *testing.T) {
	_, s, n := openWithNetwork(t)
	dup := n
	dup.ID = NewID()
	if err := s.CreateNetwork(dup); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: got %v, want ErrExists", err)
	}
	ep := api.Endpoint{ID: NewID(), Name: "c1", NetworkID: n.ID, Addrs: []netip.Prefix{netip.MustParsePrefix("172.16.86.10/24")}}
	if err := s.CreateEndpoint(ep); err != nil {
		t.Fatal(err)
	}
	var inUse *InUseError
	if err := s.DeleteNetwork(n.ID); !errors.As(err, &inUse) || inUse.Endpoints[0] != "c1" {
		t.Fatalf("delete in use: got %v, want InUseError naming c1", err)
	}
	if err := s.DeleteEndpoint(ep.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEndpoint(ep.ID); err != nil {
		t.Fatalf("second delete must be a no-op: %v", err)
	}
	if err := s.DeleteNetwork(n.ID); err != nil {
		t.Fatal(err)
	}
	if ns, _ := s.Networks(); len(ns) != 0 {
		t.Fatalf("networks after delete: %v", ns)
	}
	if err := s.CreateNetwork(n); err != nil {
		t.Fatalf("name must be free again: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestEndpointNeedsNetwork(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.CreateEndpoint(api.Endpoint{ID: NewID(), Name: "c1", NetworkID: "nope"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func TestLockAndIdentity(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := s.AgentID()
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600", st.Mode().Perm())
	}
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.AgentID() != id {
		t.Fatalf("agent id changed across opens: %s -> %s", id, s2.AgentID())
	}
}
