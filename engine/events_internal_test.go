package engine

import (
	"net"
	"testing"

	"github.com/mvlan/mvlan/link"
)

// TestGatewayLinkChanged: which link events of the host's change the
// links that may claim a network's gateways, on parent 2.
func TestGatewayLinkChanged(t *testing.T) {
	vrrp := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, 0x07}
	vm := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	ep := net.HardwareAddr{0x02, 0x42, 0x0a, 0x06, 0x00, 0x09}
	n := &network{}
	n.initIndex()
	n.byMAC[string(ep)] = &entry{}
	for _, tc := range []struct {
		name   string
		pinned map[int]string
		ev     link.LinkEvent
		want   bool
	}{
		{"a new macvlan on the parent", map[int]string{}, link.LinkEvent{Index: 9, MAC: vm, MacvlanOn: 2}, true},
		{"a macvlan on another link", map[int]string{}, link.LinkEvent{Index: 9, MAC: vm, MacvlanOn: 3}, false},
		{"another kind of link", map[int]string{}, link.LinkEvent{Index: 9, MAC: vm}, false},
		{"an endpoint's link on its way to its container", map[int]string{}, link.LinkEvent{Index: 9, MAC: ep, MacvlanOn: 2}, false},
		{"another link deleted", map[int]string{7: string(vrrp)}, link.LinkEvent{Index: 9, MAC: vm, MacvlanOn: 2, Deleted: true}, false},
		{"a pinned link deleted", map[int]string{7: string(vrrp)}, link.LinkEvent{Index: 7, MAC: vrrp, MacvlanOn: 2, Deleted: true}, true},
		{"a pinned link given another MAC", map[int]string{7: string(vrrp)}, link.LinkEvent{Index: 7, MAC: vm, MacvlanOn: 2}, true},
		{"a pinned link as it was", map[int]string{7: string(vrrp)}, link.LinkEvent{Index: 7, MAC: vrrp, MacvlanOn: 2}, false},
		{"a new macvlan with nothing pinned", nil, link.LinkEvent{Index: 9, MAC: vm, MacvlanOn: 2}, false},
	} {
		n.gatewayLinks = tc.pinned
		if got := n.gatewayLinkChanged(tc.ev, 2); got != tc.want {
			t.Errorf("%s: changed %v, want %v", tc.name, got, tc.want)
		}
	}
}
