package engine

import (
	"net"
	"testing"

	"github.com/mvlan/mvlan/link"
)

// TestConcerns: which link events have the parents checked.
func TestConcerns(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	other := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	vlan := func(st Status) *network { // eth0.50, made by mvlan, on eth0 (2)
		n := &network{ID: "0123456789abcdef", Parent: "eth0.50", ParentKind: ParentVLAN}
		n.cur.Store(&netName{name: "v50"})
		n.parentIndex, n.parentName, n.parentMAC, n.selfIndex = 10, "eth0.50", mac, 10
		n.trunkIndex, n.trunkName = 2, "eth0"
		n.status = health{status: st}
		return n
	}
	lowered := &network{ID: "fedcba9876543210", Parent: "mv0", ParentKind: ParentExisting} // mv0 (7), a macvlan of eth1 (3)
	lowered.cur.Store(&netName{name: "onmv"})
	lowered.parentIndex, lowered.parentName, lowered.parentMAC, lowered.selfIndex = 3, "eth1", mac, 7
	failed := vlan(StatusParentFailed)
	failed.trunkIndex, failed.trunkName = 0, ""
	for _, c := range []struct {
		what string
		n    *network
		ev   link.LinkEvent
		want bool
	}{
		{"parent as it was", vlan(StatusOK), link.LinkEvent{Name: "eth0.50", Index: 10, MAC: mac, Alias: "own"}, false},
		{"parent with another MAC", vlan(StatusOK), link.LinkEvent{Name: "eth0.50", Index: 10, MAC: other, Alias: "own"}, true},
		{"parent deleted", vlan(StatusOK), link.LinkEvent{Name: "eth0.50", Index: 10, MAC: mac, Alias: "own", Deleted: true}, true},
		{"parent with another alias", vlan(StatusOK), link.LinkEvent{Name: "eth0.50", Index: 10, MAC: mac, Alias: "x"}, true},
		{"trunk as it was (another network's endpoint)", vlan(StatusOK), link.LinkEvent{Name: "eth0", Index: 2, MAC: other}, false},
		{"trunk renamed", vlan(StatusOK), link.LinkEvent{Name: "eth9", Index: 2, MAC: other}, true},
		{"trunk deleted", vlan(StatusOK), link.LinkEvent{Name: "eth0", Index: 2, Deleted: true}, true},
		{"lower back at a new index", failed, link.LinkEvent{Name: "eth0", Index: 20, MAC: other}, true},
		{"trunk as it was, network failed", vlan(StatusParentFailed), link.LinkEvent{Name: "eth0", Index: 2, MAC: other}, true},
		{"lower back, network ok", vlan(StatusOK), link.LinkEvent{Name: "eth0", Index: 20, MAC: other}, false},
		{"unrelated link", vlan(StatusOK), link.LinkEvent{Name: "eth5", Index: 5, MAC: other}, false},
		{"macvlan parent's lower as it was", lowered, link.LinkEvent{Name: "eth1", Index: 3, MAC: mac}, false},
		{"macvlan parent renamed", lowered, link.LinkEvent{Name: "mv9", Index: 7, MAC: other}, true},
		{"macvlan parent deleted", lowered, link.LinkEvent{Name: "mv0", Index: 7, Deleted: true}, true},
	} {
		if got := c.n.concerns(c.ev, "own"); got != c.want {
			t.Errorf("%s: concerns = %v, want %v", c.what, got, c.want)
		}
	}
}
