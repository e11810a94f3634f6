package store

import (
	"net/netip"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mvlan/mvlan/api"
)

func TestHighWaterAbove(t *testing.T) {
	a := netip.MustParseAddr
	h := HighWater{}.Raise(a("10.0.0.9"), a("10.0.0.3"), a("fd00::5"))
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.0.0.10", true}, {"10.0.0.9", false}, {"10.0.0.2", false},
		{"fd00::6", true}, {"fd00::5", false}, {"fd00::1", false},
	} {
		if got := h.Above(a(tc.addr)); got != tc.want {
			t.Errorf("%+v.Above(%s) = %v, want %v", h, tc.addr, got, tc.want)
		}
	}
	if !(HighWater{}).Above(a("10.0.0.1")) || !(HighWater{}).Above(a("::1")) {
		t.Error("the zero HighWater must be below every address")
	}
}

// TestReleasedHighWater: a new network's high water is known and empty;
// deleting endpoints and giving the shim's addresses back
// (UpdateNetwork) raise it, durably; deleting the network forgets it.
func TestReleasedHighWater(t *testing.T) {
	dir, s, n := openWithNetwork(t)
	wantHighWater(t, s, n.ID, HighWater{}, true)
	for i, addrs := range [][]string{{"172.16.86.10/24", "fd00::20/64"}, {"172.16.86.4/24"}} {
		ep := endpointWith(n.ID, "c"+string(rune('1'+i)), addrs...)
		if err := s.CreateEndpoint(ep); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteEndpoint(ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UpdateNetwork(n, netip.MustParseAddr("172.16.86.9"), netip.MustParseAddr("fd00::30")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantHighWater(t, s, n.ID, HighWater{V4: netip.MustParseAddr("172.16.86.10"), V6: netip.MustParseAddr("fd00::30")}, true)
	if err := s.DeleteNetwork(n.ID); err != nil {
		t.Fatal(err)
	}
	wantHighWater(t, s, n.ID, HighWater{}, false)
}

// TestHighWaterUnknown: a network without a valid record (an older
// mvlan's state, one restored from a snapshot, a value that does not
// decode) has an unknown high water, and stays so: deleting its
// endpoints (at once or lazily) works, and no raise makes it known.
func TestHighWaterUnknown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string, s *Store, id string) *Store
	}{
		{"older mvlan", func(t *testing.T, _ string, s *Store, id string) *Store {
			putRaw(t, s, id, nil)
			return s
		}},
		{"garbled", func(t *testing.T, _ string, s *Store, id string) *Store {
			putRaw(t, s, id, []byte(`{"v4":"172.16.86.300"`))
			return s
		}},
		{"restored", func(t *testing.T, dir string, s *Store, _ string) *Store {
			if err := s.Close(); err != nil { // a clean close snapshots
				t.Fatal(err)
			}
			if _, err := RestoreSnapshot(dir); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			n := api.Network{ID: NewID(), Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting}
			c1, c2 := endpointWith(n.ID, "c1", "172.16.86.10/24"), endpointWith(n.ID, "c2", "172.16.86.11/24")
			for _, err := range []error{s.CreateNetwork(n), s.CreateEndpoint(c1), s.CreateEndpoint(c2)} {
				if err != nil {
					t.Fatal(err)
				}
			}
			s = tc.damage(t, dir, s, n.ID)
			defer s.Close()
			wantHighWater(t, s, n.ID, HighWater{}, false)
			if err := s.DeleteEndpoint(c1.ID); err != nil {
				t.Fatalf("delete an endpoint of a network whose high water is unknown: %v", err)
			}
			s.DeleteEndpointLater(c2.ID)
			if err := s.UpdateNetwork(n, netip.MustParseAddr("172.16.86.12")); err != nil {
				t.Fatal(err)
			}
			if eps, err := s.Endpoints(); err != nil || len(eps) != 0 {
				t.Errorf("endpoints after their deletion: %v, %v; want none", eps, err)
			}
			wantHighWater(t, s, n.ID, HighWater{}, false)
		})
	}
}

func endpointWith(netID, name string, addrs ...string) api.Endpoint {
	ep := api.Endpoint{ID: NewID(), Name: name, NetworkID: netID}
	for _, p := range addrs {
		ep.Addrs = append(ep.Addrs, netip.MustParsePrefix(p))
	}
	return ep
}

// putRaw stores data as network id's high water (nil: none).
func putRaw(t *testing.T, s *Store, id string, data []byte) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if data == nil {
			return dropHighWater(tx, id)
		}
		return tx.Bucket(bHighWater).Put([]byte(id), data)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wantHighWater(t *testing.T, s *Store, id string, want HighWater, wantKnown bool) {
	t.Helper()
	if got, known, err := s.ReleasedHighWater(id); err != nil || got != want || known != wantKnown {
		t.Errorf("ReleasedHighWater = %+v, known %v, %v; want %+v, known %v", got, known, err, want, wantKnown)
	}
}
