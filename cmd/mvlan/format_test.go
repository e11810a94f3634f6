package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestFormat: --format against a real agent, as Docker's CLI takes it:
// golden output of templates (with Docker's functions), tables and JSON
// for network ls/inspect/create, ps and stats; flags before or after the
// arguments; 12-character IDs in ls and ps templates and -q, whole with
// --no-trunc; [] when there is nothing; one JSON shape
// for a network in ls and inspect; bad formats refused (exit 2) and bad
// fields reported (exit 1).
func TestFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"ps", "--format", "json"}, {"network", "ls", "--format", "json"}} {
		if out := e.a.ok(args...); out != "[]\n" {
			t.Errorf("mvlan %s with nothing: %q, want []", strings.Join(args, " "), out)
		}
	}
	id := strings.TrimSpace(e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1",
		"--label", "env=lab", "-o", "parent=eth0", "pub_net"))
	c1 := e.name("1")
	ep := e.runD(c1, "pub_net", "--ip=172.16.86.10", "--mac=02:42:ac:10:56:0a")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "inspect", "pub_net", "-f", "{{.Name}} {{.Driver}} {{.Scope}} {{json .IPAM.Config}} {{.Options.parent}} {{.Labels.env}} {{.EnableIPv6}}"},
			`pub_net macvlan local [{"Subnet":"172.16.86.0/24","Gateway":"172.16.86.1"}] eth0 lab false` + "\n"},
		{[]string{"network", "inspect", "--format", "{{upper .Name}}", "pub_net"}, "PUB_NET\n"},
		// The JSON's names work too, as in docker network inspect.
		{[]string{"network", "inspect", "-f", "{{.Id}} {{.IPAM.Driver}} {{.EnableIPv6}}", "pub_net"}, id + " default false\n"},
		{[]string{"network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}} {{.MacAddress}}{{end}}", id[:5]},
			c1 + " 172.16.86.10/24 02:42:ac:10:56:0a\n"},
		{[]string{"network", "ls", "--format", "{{.Name}} {{.ID}} {{join (split .Status \"-\") \"\"}}"}, "pub_net " + id[:12] + " ok\n"},
		{[]string{"network", "ls", "--format", `table {{.ID}}\t{{.Name}}`}, "NETWORK ID     NAME\n" + id[:12] + "   pub_net\n"},
		{[]string{"network", "ls", "--no-trunc", "--format", `table {{.ID}}\t{{.Name}}`},
			fmt.Sprintf("%-*s   NAME\n%s   pub_net\n", len(id), "NETWORK ID", id)},
		{[]string{"network", "ls", "--format", "{{.Name}} {{.EndpointCount}} {{len .Containers}}"}, "pub_net 1 0\n"},
		{[]string{"network", "inspect", "pub_net", "--format", "{{.EndpointCount}} {{len .Containers}}"}, "1 1\n"},
		{[]string{"network", "ls", "-q"}, id[:12] + "\n"},
		{[]string{"network", "ls", "--no-trunc", "-q"}, id + "\n"},
		{[]string{"ps", "--format", "{{.Name}} {{.Network}} {{.IPv4Address}} {{.MacAddress}} {{.IfName}} {{.State}} {{.Addresses}}"},
			c1 + " pub_net 172.16.86.10/24 02:42:ac:10:56:0a eth0 ready [172.16.86.10/24]\n"},
		{[]string{"ps", "--format", `table {{.ID}}\t{{.Name}}`}, "CONTAINER ID   NAME\n" + ep.ID[:12] + "   " + c1 + "\n"},
		{[]string{"ps", "--no-trunc", "--format", "{{.ID}}"}, ep.ID + "\n"},
		{[]string{"ps", "--format", `table {{.Name}}\t{{.IPv4Address}}`},
			fmt.Sprintf("%-*s   IPV4ADDRESS\n%-*s   172.16.86.10/24\n", max(len(c1), 4), "NAME", max(len(c1), 4), c1)},
		{[]string{"stats", "--format", "{{.Network}} {{.DropTotal.Packets}}"}, "pub_net 0\n"},
	} {
		if out := e.a.ok(tc.args...); out != tc.want {
			t.Errorf("mvlan %q printed\n%s\nwant\n%s", tc.args, out, tc.want)
		}
	}
	// The default table of network ls: Docker's first columns, then mvlan's.
	ls := strings.Split(e.a.ok("network", "ls"), "\n")
	if h := strings.Join(strings.Fields(ls[0]), " "); h != "NETWORK ID NAME DRIVER SCOPE PARENT SUBNETS STATUS" ||
		strings.Join(strings.Fields(ls[1]), " ") != id[:12]+" pub_net macvlan local eth0 172.16.86.0/24 ok" {
		t.Errorf("network ls:\n%s", strings.Join(ls, "\n"))
	}
	wantSameNetworkShape(t, e.a.ok("network", "ls", "--format", "json"), e.a.ok("network", "inspect", "pub_net", "--format", "json"))
	var ps []map[string]any
	if err := json.Unmarshal([]byte(e.a.ok("ps", "--format", "json")), &ps); err != nil || len(ps) != 1 {
		t.Fatalf("ps --format json: %v, %d objects", err, len(ps))
	}
	if got, want := slices.Sorted(maps.Keys(ps[0])), []string{"Addresses", "Created", "ID", "IPv4Address", "IPv6Address",
		"IfName", "MacAddress", "Name", "Netns", "Network", "NetworkID", "State"}; !slices.Equal(got, want) {
		t.Errorf("ps --format json keys %v, want %v", got, want)
	}
	// Bad values: a format that is no format is a usage error; a missing
	// field fails the command with the field named; a network that is not
	// there fails after the others are printed, as docker network inspect.
	for _, tc := range []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"network", "ls", "--format", "yaml"}, 2, "", `"yaml"`},
		{[]string{"ps", "--format", "{{.Name"}, 2, "", "unclosed action"},
		{[]string{"stats", "--format", "{{.Nope}}"}, 1, "", "Nope"},
		{[]string{"network", "inspect", "pub_net", "nosuch", "--format", "{{.Name}}"}, 1, "pub_net\n", "nosuch"},
		{[]string{"network", "ls", "extra"}, 2, "", `"extra"`},
	} {
		out, errs, code := e.a.mv(tc.args...)
		if code != tc.code || out != tc.out || !strings.Contains(errs, tc.err) {
			t.Errorf("mvlan %q: exit %d, out %q, err %q; want exit %d, out %q, err naming %s", tc.args, code, out, errs, tc.code, tc.out, tc.err)
		}
	}
}

// wantSameNetworkShape: network ls and inspect print a network with the
// same fields (docker network inspect's, plus mvlan's).
func wantSameNetworkShape(t *testing.T, lsOut, inspectOut string) {
	t.Helper()
	var ls, in []map[string]any
	if err := json.Unmarshal([]byte(lsOut), &ls); err != nil || len(ls) != 1 {
		t.Fatalf("network ls --format json: %v, %d objects:\n%s", err, len(ls), lsOut)
	}
	if err := json.Unmarshal([]byte(inspectOut), &in); err != nil || len(in) != 1 {
		t.Fatalf("network inspect --format json: %v, %d objects:\n%s", err, len(in), inspectOut)
	}
	lk, ik := slices.Sorted(maps.Keys(ls[0])), slices.Sorted(maps.Keys(in[0]))
	if !slices.Equal(lk, ik) || ls[0]["Id"] != in[0]["Id"] || ls[0]["Id"] == nil {
		t.Errorf("network ls and inspect differ: ls keys %v (Id %v), inspect keys %v (Id %v)", lk, ls[0]["Id"], ik, in[0]["Id"])
	}
}
