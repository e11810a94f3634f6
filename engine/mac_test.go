package engine

import (
	"bytes"
	"net"
	"testing"
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
