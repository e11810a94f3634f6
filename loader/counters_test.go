package loader

import (
	"maps"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
)

// TestCountersUpTo: Counters(maxNetwork) reads the network counters of
// networks up to maxNetwork or up to the highest parent's network (whose
// parent traffic counts per VLAN), whichever is higher, and no other;
// per-CPU values are summed.
// Well under a second.
func TestCountersUpTo(t *testing.T) {
	d := newTestDatapath(t)
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{1, 2, 300, 301, MaxNetworkID} {
		v := make([]netCounters, ncpu)
		for cpu := range v {
			v[cpu].Rx = pbValue{Packets: uint64(id), Bytes: 100}
			v[cpu].Parent.Rx = pbValue{Packets: 1, Bytes: 60}
		}
		if err := d.maps.NetStats.Put(&id, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetParent(7, 2, 12); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		max      uint32
		networks []uint32
	}{
		{0, []uint32{1, 2}},
		{1, []uint32{1, 2}},
		{299, []uint32{1, 2}},
		{300, []uint32{1, 2, 300}},
		{301, []uint32{1, 2, 300, 301}},
		{MaxNetworkID, []uint32{1, 2, 300, 301, MaxNetworkID}},
		{1 << 20, []uint32{1, 2, 300, 301, MaxNetworkID}},
	}
	for _, tt := range tests {
		s, err := d.Counters(tt.max)
		if err != nil {
			t.Fatalf("counters up to %d: %v", tt.max, err)
		}
		if got := slices.Sorted(maps.Keys(s.Network)); !slices.Equal(got, tt.networks) {
			t.Errorf("up to %d: networks %v, want %v", tt.max, got, tt.networks)
		}
		for id, tr := range s.Network {
			if want := (Counter{uint64(id) * uint64(ncpu), 100 * uint64(ncpu)}); tr.Rx != want {
				t.Errorf("up to %d: network %d rx %+v, want %+v", tt.max, id, tr.Rx, want)
			}
		}
		if got, want := s.VLAN[VLANKey{7, 12}].Rx, (Counter{uint64(ncpu), 60 * uint64(ncpu)}); got != want {
			t.Errorf("up to %d: parent 7 VLAN 12 rx %+v, want %+v", tt.max, got, want)
		}
	}
}
