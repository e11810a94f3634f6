package engine

import (
	"fmt"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// TestVLANStatsOrder: per-VLAN counters come sorted by parent name, then
// VID (numerically), whatever the ifindexes; a link the host no longer
// has is "ifindex:N".
func TestVLANStatsOrder(t *testing.T) {
	vk := func(ifindex int, vid uint16) loader.VLANKey { return loader.VLANKey{Ifindex: ifindex, VID: vid} }
	links := map[int]link.Info{2: {Index: 2, Name: "trunk"}, 3: {Index: 3, Name: "eth0"}, 9: {Index: 9, Name: "bond0"}}
	tests := []struct {
		name string
		keys []loader.VLANKey
		want []string
	}{
		{"none", nil, nil},
		{"one parent", []loader.VLANKey{vk(2, 300), vk(2, 4), vk(2, 0), vk(2, 4094), vk(2, 20)},
			[]string{"trunk/0", "trunk/4", "trunk/20", "trunk/300", "trunk/4094"}},
		{"by name, not ifindex", []loader.VLANKey{vk(2, 1), vk(3, 7), vk(9, 2), vk(3, 0), vk(2, 0)},
			[]string{"bond0/2", "eth0/0", "eth0/7", "trunk/0", "trunk/1"}},
		{"gone link", []loader.VLANKey{vk(40, 5), vk(3, 5), vk(40, 1)},
			[]string{"eth0/5", "ifindex:40/1", "ifindex:40/5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[loader.VLANKey]loader.Traffic{}
			for i, k := range tt.keys {
				m[k] = loader.Traffic{Rx: loader.Counter{Packets: uint64(i)}}
			}
			var got []string
			for _, v := range (&StatsBuffers{snap: loader.Snapshot{VLAN: m}}).vlanStats(links) {
				got = append(got, fmt.Sprintf("%s/%d", v.Parent, v.VLAN))
				for k, tr := range m {
					if linkName(links, k.Ifindex) == v.Parent && k.VID == v.VLAN && tr.Rx.Packets != v.Rx.Packets {
						t.Errorf("%s/%d: %d rx packets, want %d", v.Parent, v.VLAN, v.Rx.Packets, tr.Rx.Packets)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
