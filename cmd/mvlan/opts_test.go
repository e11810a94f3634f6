package main

import (
	"reflect"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
)

// parsedCreate runs the network create command line args through the
// CLI's own parsing (interspersed, then urfave/cli) and returns the
// request it would send, without an agent.
func parsedCreate(t *testing.T, args ...string) api.NetworkCreate {
	t.Helper()
	app := newApp()
	var got api.NetworkCreate
	app.Command("network").Command("create").Action = func(c *cli.Context) error {
		got = createRequest(c)
		return nil
	}
	if err := app.Run(interspersed(app, append([]string{"mvlan", "network", "create"}, args...))); err != nil {
		t.Fatalf("network create %q: %v", args, err)
	}
	return got
}

// TestCreateOpts: -o values reach the agent as given, one per -o (a
// value without "=" is not glued to the one before; a value's commas
// stay); --subnet, --gateway and --ip-range are split at commas as
// Docker's CLI splits them; --aux-address and --label are taken whole,
// as Docker's map and list flags.
func TestCreateOpts(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want api.NetworkCreate
	}{
		{[]string{"-o", "parent=eth0", "-o", "macvlan_mode", "x"},
			api.NetworkCreate{Name: "x", Options: []string{"parent=eth0", "macvlan_mode"}}},
		{[]string{"-o", "parent=eth0", "-o", "host_shim=10.0.0.2,fd00::2", "-o", "ipv6_ra_source=fe80::1,02:00:5e:00:53:01", "x"},
			api.NetworkCreate{Name: "x", Options: []string{"parent=eth0", "host_shim=10.0.0.2,fd00::2", "ipv6_ra_source=fe80::1,02:00:5e:00:53:01"}}},
		// The reference's macvlan60: the dangling -o is dropped.
		{[]string{"-o", "parent=eth0.60", "-o", "-o", "macvlan_mode=bridge", "macvlan60"},
			api.NetworkCreate{Name: "macvlan60", Options: []string{"parent=eth0.60", "macvlan_mode=bridge"}}},
		{[]string{"--subnet", "10.0.0.0/24,10.1.0.0/24", "--subnet=fd00::/64", "--gateway=10.0.0.1,10.1.0.1",
			"--ip-range", "10.0.0.0/25,10.1.0.0/25", "x"},
			api.NetworkCreate{Name: "x", Subnets: []string{"10.0.0.0/24", "10.1.0.0/24", "fd00::/64"},
				Gateways: []string{"10.0.0.1", "10.1.0.1"}, IPRanges: []string{"10.0.0.0/25", "10.1.0.0/25"}}},
		{[]string{"--subnet", "10.0.0.0/24,", "x"}, api.NetworkCreate{Name: "x", Subnets: []string{"10.0.0.0/24", ""}}},
		{[]string{"--aux-address", "a=10.0.0.2,b=10.0.0.3", "--label", "desc=a,b", "--ipam-opt", "allocation=serial", "x"},
			api.NetworkCreate{Name: "x", AuxAddrs: []string{"a=10.0.0.2,b=10.0.0.3"}, Labels: []string{"desc=a,b"},
				IPAMOptions: []string{"allocation=serial"}}},
	} {
		tt.want.Driver, tt.want.Scope, tt.want.IPAMDriver = api.Driver, api.ScopeLocal, "default"
		if got := parsedCreate(t, tt.args...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("network create %q\n sends %+v\n want  %+v", tt.args, got, tt.want)
		}
	}
}

// TestUpdateOpts: network update's -o values reach the agent whole.
func TestUpdateOpts(t *testing.T) {
	app := newApp()
	var got []string
	app.Command("network").Command("update").Action = func(c *cli.Context) error {
		got = updateRequest(c).Options
		return nil
	}
	args := []string{"mvlan", "network", "update", "n", "-o", "host_shim=10.0.0.2,fd00::2"}
	if err := app.Run(interspersed(app, args)); err != nil || !reflect.DeepEqual(got, []string{"host_shim=10.0.0.2,fd00::2"}) {
		t.Errorf("network update %q: %v, options %q; want the one option whole", args[3:], err, got)
	}
}
