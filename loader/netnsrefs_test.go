package loader

import (
	"maps"
	"testing"
)

// netnsTable returns the cookies in ep_netns.
func netnsTable(t *testing.T, d *Datapath) map[uint64]bool {
	t.Helper()
	out := map[uint64]bool{}
	if err := readEach(d.maps.EpNetns, func(c uint64, _ uint8) { out[c] = true }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEndpointNamespaces: ep_netns holds the namespace of every endpoint
// row, as long as one row has it, through adds, updates, moves and
// deletes; a new Load on the same pins makes it the table's again,
// whatever a crash left in it.
func TestEndpointNamespaces(t *testing.T) {
	pins := privateBPFFS(t)
	d := loadAt(t, pins)
	want := func(when string, cookies ...uint64) {
		t.Helper()
		w := map[uint64]bool{}
		for _, c := range cookies {
			w[c] = true
		}
		if got := netnsTable(t, d); !maps.Equal(got, w) {
			t.Errorf("%s: ep_netns holds %v, want %v", when, got, w)
		}
	}
	a := Endpoint{NetnsCookie: 1, Ifindex: 2, MAC: macA, NetworkID: netA, IPs: addrs("10.1.0.10")}
	b := Endpoint{NetnsCookie: 1, Ifindex: 3, MAC: macB, NetworkID: netA, IPs: addrs("10.1.0.11")}
	c := Endpoint{NetnsCookie: 2, Ifindex: 2, MAC: macC, NetworkID: netA, IPs: addrs("10.1.0.12")}
	for _, ep := range []Endpoint{a, b, c, a} { // a twice: an update
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	want("three rows in two namespaces", 1, 2)
	if err := d.DeleteEndpoint(1, 2); err != nil {
		t.Fatal(err)
	}
	want("a's row gone, b's left", 1, 2)
	if err := d.DeleteEndpoint(1, 3); err != nil {
		t.Fatal(err)
	}
	want("both rows of namespace 1 gone", 2)
	moved := c
	moved.NetnsCookie = 3
	if err := d.MoveEndpoint(2, 2, moved); err != nil {
		t.Fatal(err)
	}
	want("c moved to namespace 3", 3)
	stale := uint64(99)
	if err := d.maps.EpNetns.Put(&stale, uint8(1)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d = loadAt(t, pins)
	want("after a new Load", 3)
	if err := d.DeleteEndpoint(3, 2); err != nil {
		t.Fatal(err)
	}
	want("the last row gone")
}
