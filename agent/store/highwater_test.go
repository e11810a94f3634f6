package store

import (
	"net/netip"
	"testing"

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

// TestReleasedHighWater: deleting endpoints raises their network's high
// water to their addresses, durably, and deleting the network forgets it.
func TestReleasedHighWater(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := api.Network{ID: NewID(), Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting}
	if err := s.CreateNetwork(n); err != nil {
		t.Fatal(err)
	}
	for i, addrs := range [][]string{{"172.16.86.10/24", "fd00::20/64"}, {"172.16.86.4/24"}} {
		ep := api.Endpoint{ID: NewID(), Name: "c" + string(rune('1'+i)), NetworkID: n.ID}
		for _, p := range addrs {
			ep.Addrs = append(ep.Addrs, netip.MustParsePrefix(p))
		}
		if err := s.CreateEndpoint(ep); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteEndpoint(ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := HighWater{V4: netip.MustParseAddr("172.16.86.10"), V6: netip.MustParseAddr("fd00::20")}
	if got, err := s.ReleasedHighWater(n.ID); err != nil || got != want {
		t.Errorf("ReleasedHighWater after reopening = %+v, %v; want %+v", got, err, want)
	}
	if err := s.DeleteNetwork(n.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReleasedHighWater(n.ID); err != nil || got != (HighWater{}) {
		t.Errorf("ReleasedHighWater of a deleted network = %+v, %v; want none", got, err)
	}
}
