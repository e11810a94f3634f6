package main

import (
	"slices"
	"testing"
)

func TestDriverOpts(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"parent=eth0", "host_shim=10.0.0.2", "fd00::2"}, []string{"parent=eth0", "host_shim=10.0.0.2,fd00::2"}},
		{[]string{"ipv6_ra=accept", "ipv6_ra_source=fe80::1", "02:00:5e:00:53:01"}, []string{"ipv6_ra=accept", "ipv6_ra_source=fe80::1,02:00:5e:00:53:01"}},
		{[]string{"parent=eth0.60", "-o", "macvlan_mode=bridge"}, []string{"parent=eth0.60", "-o", "macvlan_mode=bridge"}},
		{[]string{"x"}, []string{"x"}},
	} {
		if got := driverOpts(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("driverOpts(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
