package engine

import (
	"net/netip"
	"testing"
)

// TestAsked: an address that answers duplicate address detection is the
// one a request asked for however the request spells it.
func TestAsked(t *testing.T) {
	u := netip.MustParseAddr("2001:db8::5")
	for _, tc := range []struct {
		want string
		ok   bool
	}{{"2001:db8::5", true}, {"2001:DB8::5", true}, {"2001:db8:0::5", true}, {"2001:db8::6", false}, {"", false}, {"bogus", false}} {
		if got := asked(u, tc.want); got != tc.ok {
			t.Errorf("asked(%s, %q) = %t; want %t", u, tc.want, got, tc.ok)
		}
	}
	if !asked(netip.MustParseAddr("10.0.0.5"), "::ffff:10.0.0.5") {
		t.Error("an IPv4-mapped request is not the IPv4 address")
	}
}
