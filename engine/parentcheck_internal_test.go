package engine

import (
	"testing"

	"github.com/mvlan/mvlan/link"
)

func TestStackedOn(t *testing.T) {
	links := []link.Info{
		{Name: "eth0", Kind: "device", Index: 2},
		{Name: "eth0.50", Kind: "vlan", Index: 10, ParentIndex: 2},
		{Name: "eth0.50.60", Kind: "vlan", Index: 11, ParentIndex: 10},
		{Name: "eth0.50.60.7", Kind: "vlan", Index: 12, ParentIndex: 11},
		{Name: "mv0", Kind: "macvlan", Index: 13, ParentIndex: 10},
		{Name: "far", Kind: "vlan", Index: 14, ParentIndex: 10, LowerElsewhere: true},
		{Name: "veth0", Kind: "veth", Index: 15, ParentIndex: 10},
		{Name: "loop", Kind: "vlan", Index: 16, ParentIndex: 16},
		{Name: "eth1.5", Kind: "vlan", Index: 17, ParentIndex: 3},
	}
	byIndex := map[int]link.Info{}
	for _, l := range links {
		byIndex[l.Index] = l
	}
	for _, c := range []struct {
		link string
		on   int
		want bool
	}{
		{"eth0.50.60", 10, true},    // a VLAN on eth0.50
		{"eth0.50.60.7", 10, true},  // through eth0.50.60
		{"mv0", 10, true},           // a macvlan of it
		{"eth0.50", 10, false},      // itself
		{"eth0.50", 2, true},        // eth0.50 on eth0
		{"far", 10, false},          // its index is another namespace's
		{"veth0", 10, false},        // a veth's peer is no lower link
		{"loop", 10, false},         // a link its own lower ends the walk
		{"eth1.5", 10, false},       // on a link that is not listed
		{"eth0.50.60.7", 13, false}, // not on mv0
	} {
		var l link.Info
		for _, x := range links {
			if x.Name == c.link {
				l = x
			}
		}
		if got := stackedOn(l, c.on, byIndex); got != c.want {
			t.Errorf("stackedOn(%s, %d) = %v, want %v", c.link, c.on, got, c.want)
		}
	}
}
