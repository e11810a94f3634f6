package main

import (
	"slices"
	"testing"
)

func TestInterspersed(t *testing.T) {
	app := newApp()
	for _, tt := range []struct{ in, want []string }{
		{[]string{"mvlan", "network", "inspect", "n", "--format", "json"}, []string{"mvlan", "network", "inspect", "--format", "json", "n"}},
		{[]string{"mvlan", "ps", "-qa"}, []string{"mvlan", "ps", "-qa"}},
		// The reference's macvlan60 example: a dangling -o is dropped.
		{[]string{"mvlan", "network", "create", "-d", "macvlan", "--subnet=192.168.60.0/24", "--gateway=192.168.60.1",
			"-o", "parent=eth0.60", "-o", "-o", "macvlan_mode=bridge", "macvlan60"},
			[]string{"mvlan", "network", "create", "-d", "macvlan", "--subnet=192.168.60.0/24", "--gateway=192.168.60.1",
				"-o", "parent=eth0.60", "-o", "macvlan_mode=bridge", "macvlan60"}},
		{[]string{"mvlan", "network", "create", "n", "-o", "--opt", "parent=eth0"}, []string{"mvlan", "network", "create", "--opt", "parent=eth0", "n"}},
		// A network named o is not the flag -o.
		{[]string{"mvlan", "network", "create", "o", "--subnet=10.0.0.0/24"}, []string{"mvlan", "network", "create", "--subnet=10.0.0.0/24", "o"}},
		// A value flag before another flag is not an option: left for the parser.
		{[]string{"mvlan", "network", "create", "--subnet", "--gateway=10.0.0.1", "n"}, []string{"mvlan", "network", "create", "--subnet", "--gateway=10.0.0.1", "n"}},
		{[]string{"mvlan", "network", "create", "-o", "parent=eth0", "n", "--", "-o"}, []string{"mvlan", "network", "create", "-o", "parent=eth0", "--", "n", "-o"}},
		{[]string{"mvlan", "run", "--net", "n", "c1", "ping", "-o", "-c", "1"}, []string{"mvlan", "run", "--net", "n", "c1", "ping", "-o", "-c", "1"}},
	} {
		if got := interspersed(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("interspersed(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}
