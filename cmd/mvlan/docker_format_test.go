package main

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// testFormatShape: a network made through Docker, with a container on it,
// printed by docker network inspect/ls --format '{{json .}}' and by mvlan: every
// field Docker prints (top level, IPAM, IPAM.Config, the Containers
// entries) is in mvlan's inspect and ls JSON under the same name, and
// every field of docker network ls works in an mvlan template with the
// same value where the two agree by design (Name, Scope, Internal, IPv4,
// IPv6).
func (x *dockerTest) testFormatShape(t *testing.T) {
	// -o name: mvlan names a network made through Docker by Docker's short
	// ID otherwise (the driver protocol does not carry the name; README).
	id := x.network(t, "--subnet=172.16.90.0/24", "--gateway=172.16.90.1", "-o", "parent=eth1", "-o", "name=fmt_net", "fmt_net")
	x.runD(t, "fmt1", "--net=fmt_net", "--ip=172.16.90.10")
	x.endpoint(t, "fmt1")
	var docker, mv []map[string]any
	if err := json.Unmarshal([]byte("["+x.ok(t, "network", "inspect", "--format", "{{json .}}", "fmt_net")+"]"), &docker); err != nil || len(docker) != 1 {
		t.Fatalf("docker network inspect --format json: %v", err)
	}
	if err := json.Unmarshal([]byte(x.a.ok("network", "inspect", "--format", "json", id)), &mv); err != nil || len(mv) != 1 {
		t.Fatalf("mvlan network inspect --format json: %v", err)
	}
	wantKeys(t, "inspect", docker[0], mv[0])
	wantKeys(t, "inspect IPAM", docker[0]["IPAM"], mv[0]["IPAM"])
	wantKeys(t, "inspect IPAM.Config[0]", first(docker[0]["IPAM"], "Config"), first(mv[0]["IPAM"], "Config"))
	wantKeys(t, "inspect Containers entry", anyValue(docker[0]["Containers"]), anyValue(mv[0]["Containers"]))
	var ls []map[string]any
	if err := json.Unmarshal([]byte(x.a.ok("network", "ls", "--format", "json")), &ls); err != nil {
		t.Fatal(err)
	}
	for _, n := range ls {
		if n["Id"] == id {
			wantKeys(t, "ls", docker[0], n)
		}
	}
	var dls map[string]any
	if err := json.Unmarshal([]byte(x.ok(t, "network", "ls", "--filter", "name=^fmt_net$", "--format", "{{json .}}")), &dls); err != nil {
		t.Fatalf("docker network ls --format json: %v", err)
	}
	for _, field := range slices.Sorted(maps.Keys(dls)) {
		out, errs, code := x.a.mv("network", "inspect", id, "--format", "{{."+field+"}}")
		if code != 0 {
			t.Errorf("docker network ls's field %s in an mvlan template: exit %d: %s", field, code, errs)
			continue
		}
		switch field {
		case "Name", "Scope", "Internal", "IPv4", "IPv6":
			want := x.ok(t, "network", "ls", "--filter", "name=^fmt_net$", "--format", "{{."+field+"}}")
			if strings.TrimSpace(out) != want {
				t.Errorf("{{.%s}}: mvlan %q, docker %q", field, strings.TrimSpace(out), want)
			}
		}
	}
}

// wantKeys: every key of docker's object is in mvlan's.
func wantKeys(t *testing.T, what string, docker, mvlan any) {
	t.Helper()
	d, _ := docker.(map[string]any)
	m, _ := mvlan.(map[string]any)
	if len(d) == 0 || m == nil {
		t.Errorf("%s: docker printed %v, mvlan %v", what, docker, mvlan)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(d)) {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: docker prints %s, mvlan does not (mvlan: %v)", what, k, slices.Sorted(maps.Keys(m)))
		}
	}
}

// first is obj[key][0].
func first(obj any, key string) any {
	m, _ := obj.(map[string]any)
	l, _ := m[key].([]any)
	if len(l) == 0 {
		return nil
	}
	return l[0]
}

// anyValue is one value of a JSON object (nil if empty).
func anyValue(obj any) any {
	m, _ := obj.(map[string]any)
	for _, v := range m {
		return v
	}
	return nil
}
