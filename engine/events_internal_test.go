package engine

import (
	"net"
	"testing"

	"github.com/mvlan/mvlan/link"
)

// TestGatewayLinkChanged: which link events of the host's concern a
// network on parent 2 for its gateway pin.
func TestGatewayLinkChanged(t *testing.T) {
	vrrp := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x07}
	vm := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	ep := net.HardwareAddr{0x02, 0x42, 0x0a, 0x06, 0x00, 0x09}
	n := &network{Parent: "eth0", parentIndex: 2}
	n.cur.Store(&netName{name: "n"})
	n.initIndex()
	n.byMAC[string(ep)] = &entry{}
	pinned := map[int]string{7: string(vrrp)}
	for _, tc := range []struct {
		name  string
		links map[int]string
		ev    link.LinkEvent
		want  bool
	}{
		{"a new macvlan up on the parent", map[int]string{}, link.LinkEvent{Index: 9, MAC: vm, Up: true, MacvlanOn: 2}, true},
		{"a new macvlan down on the parent", map[int]string{}, link.LinkEvent{Index: 9, MAC: vm, MacvlanOn: 2}, false},
		{"a macvlan on another link", map[int]string{}, link.LinkEvent{Index: 9, MAC: vm, Up: true, MacvlanOn: 3}, false},
		{"another kind of link", map[int]string{}, link.LinkEvent{Index: 9, MAC: vm, Up: true}, false},
		{"an endpoint's link", map[int]string{}, link.LinkEvent{Index: 9, MAC: ep, Up: true, MacvlanOn: 2}, false},
		{"another link deleted", pinned, link.LinkEvent{Index: 9, MAC: vm, MacvlanOn: 2, Deleted: true}, false},
		{"a pinned link deleted", pinned, link.LinkEvent{Index: 7, MAC: vrrp, Up: true, MacvlanOn: 2, Deleted: true}, true},
		{"a pinned link down", pinned, link.LinkEvent{Index: 7, MAC: vrrp, MacvlanOn: 2}, true},
		{"a pinned link given another MAC", pinned, link.LinkEvent{Index: 7, MAC: vm, Up: true, MacvlanOn: 2}, true},
		{"a pinned link as it was", pinned, link.LinkEvent{Index: 7, MAC: vrrp, Up: true, MacvlanOn: 2}, false},
		{"a new macvlan with nothing pinned", nil, link.LinkEvent{Index: 9, MAC: vm, Up: true, MacvlanOn: 2}, false},
	} {
		n.gwPin.links = tc.links
		if got := n.concerns(tc.ev, "mvlan/a/net/n"); got != tc.want {
			t.Errorf("%s: concerns %v, want %v", tc.name, got, tc.want)
		}
	}
}
