package engine_test

import (
	"net/netip"
	"slices"
	"testing"
)

// shimOf returns network name's shim addresses as the engine shows them
// and the addresses its link has.
func (r *rig) shimOf(name string) ([]netip.Addr, []netip.Prefix) {
	r.t.Helper()
	n, err := r.e.Network(name)
	if err != nil {
		r.t.Fatal(err)
	}
	if n.HostShim == nil {
		return nil, nil
	}
	return n.HostShim.Addrs, r.k.HostAddrs(n.HostShim.Link)
}

// TestHostShimRepaired: a shim whose addresses were flushed and that was
// set down gets them back, up, on start.
func TestHostShimRepaired(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	r.stop()
	l, _ := r.k.HostLink("mvh-sn")
	l.Up = false
	r.k.AddHostLink(l)
	r.k.FlushHostAddrs("mvh-sn")
	r.start()
	if l, _ := r.k.HostLink("mvh-sn"); !l.Up {
		n, _ := r.e.Network("sn")
		t.Fatalf("the shim is still down after start: %+v", n.HostShim)
	}
	if _, got := r.shimOf("sn"); !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.5.0.2/32")}) {
		t.Fatalf("the shim's addresses after start: %v; want 10.5.0.2/32", got)
	}
	r.noDrift()
}
