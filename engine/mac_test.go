package engine

import (
	"bytes"
	"net"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/dhcp"
)

// TestPickStableMAC: the same network and name give the same MAC, another
// name or network another; a taken candidate is skipped for the next one;
// every MAC is locally administered unicast.
func TestPickStableMAC(t *testing.T) {
	none := func(net.HardwareAddr) bool { return false }
	a := pickStableMAC("lan", "web", none)
	first := stableMAC("lan", "web", 0)
	for _, tc := range []struct {
		what  string
		got   net.HardwareAddr
		equal bool
	}{
		{"same network and name", pickStableMAC("lan", "web", none), true},
		{"another name", pickStableMAC("lan", "web2", none), false},
		{"another network", pickStableMAC("lan2", "web", none), false},
		{"first candidate taken", pickStableMAC("lan", "web", func(m net.HardwareAddr) bool { return bytes.Equal(m, first) }), false},
	} {
		if bytes.Equal(tc.got, a) != tc.equal {
			t.Errorf("%s: %s vs %s, want equal=%v", tc.what, tc.got, a, tc.equal)
		}
		if tc.got[0]&3 != 2 {
			t.Errorf("%s: %s is not locally administered unicast", tc.what, tc.got)
		}
	}
}

// TestIdentityPerHost: a cluster network has one ID on every host, so two
// agents must still give a container of the same name different MACs and
// DHCP client-ids; one agent gives the same ones again (a re-created
// container), and a local network keeps its ID as the identity. A stored
// lease keeps its client-id.
func TestIdentityPerHost(t *testing.T) {
	agent := func() *Engine {
		s, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &Engine{store: s}
	}
	h1, h2 := agent(), agent()
	cnet := &network{ID: "c0ffee", Options: map[string]string{scopeOption: api.ScopeCluster}}
	lnet := &network{ID: "10ca1", Options: map[string]string{}}
	cnet.setName("cnet", "")
	lnet.setName("cnet", "")
	e := endpoint{Name: "web"}
	none := func(net.HardwareAddr) bool { return false }
	mac := func(a *Engine, n *network) net.HardwareAddr { return pickStableMAC(a.identity(n), "web", none) }
	cid := func(a *Engine, n *network) string { return string(a.dhcpLink(n, e).ClientID) }

	if bytes.Equal(mac(h1, cnet), mac(h2, cnet)) || cid(h1, cnet) == cid(h2, cnet) {
		t.Errorf("cluster network: hosts give web the same MAC %s or client-id", mac(h1, cnet))
	}
	again1, again2 := mac(h1, cnet), cid(h1, cnet)
	if !bytes.Equal(mac(h1, cnet), again1) || cid(h1, cnet) != again2 {
		t.Errorf("cluster network: one host gives web different MACs or client-ids")
	}
	if h1.identity(lnet) != lnet.ID || h2.identity(lnet) != lnet.ID {
		t.Errorf("local network: identity %q, want its ID %q", h1.identity(lnet), lnet.ID)
	}
	if cid(h1, lnet) == string(dhcp.ClientID(lnet.name(), "web")) {
		t.Errorf("local network: client-id from the network's name, the same on every host")
	}
	e.Lease = &dhcp.Lease{ClientID: []byte{0, 1, 2}}
	if got := cid(h1, cnet); got != "\x00\x01\x02" {
		t.Errorf("with a stored lease: client-id %x, want the lease's 000102", got)
	}
}
