package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestConnectRejectsNonNamespaces: connect refuses paths that are not a
// container's network namespace, naming the path, and changes nothing.
func TestConnectRejectsNonNamespaces(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	file := filepath.Join(t.TempDir(), "notans")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{file, "is not a namespace"},
		{"/proc/self/ns/mnt", "not a network namespace"},
		{"relative/ns", "not absolute"},
		{"/nonexistent/ns", "/nonexistent/ns"},
		{e.sb.Path, "agent's own (host) namespace"},
	}
	for _, tt := range tests {
		_, errs, code := e.a.mv("connect", "pub_net", tt.path)
		if code != 1 || !strings.Contains(errs, tt.want) {
			t.Errorf("connect %s: exit %d, stderr %q; want 1 and %q", tt.path, code, errs, tt.want)
		}
	}
	if eps := e.ps(); len(eps) != 0 {
		t.Fatalf("rejected connects left endpoints: %+v", eps)
	}
	// The next container still gets the first address: nothing was held.
	if ep := e.runD(e.name("1"), "pub_net"); addrOf(ep, false) != "172.16.86.2/24" {
		t.Fatalf("first container got %s, want 172.16.86.2/24", addrOf(ep, false))
	}
}

// TestRmMatchesExactNameFirst: an endpoint whose name looks like another's
// ID prefix is removed alone.
func TestRmMatchesExactNameFirst(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	other := e.runD(e.name("other"), "pub_net")
	short := other.ID[:4]
	ns := nstest.NewNetns(t, e.sb.Name+"-x")
	e.a.ok("connect", "--name", short, "pub_net", ns)
	e.a.ok("rm", "-f", short)
	if _, ok := e.endpoint(other.Name); !ok {
		t.Fatalf("rm %s also removed %s (ID %s)", short, other.Name, other.ID)
	}
	if _, ok := e.endpoint(short); ok {
		t.Fatalf("rm %s did not remove it", short)
	}
	// An ID prefix still works when no name matches.
	e.a.ok("rm", "-f", other.ID[:8])
	if _, ok := e.endpoint(other.Name); ok {
		t.Fatalf("rm by ID prefix %s did not remove %s", other.ID[:8], other.Name)
	}
}

// TestParentWithDotInName: an existing link of any name is a parent as is,
// even with a dot that is not a VLAN id.
func TestParentWithDotInName(t *testing.T) {
	e := newEnv(t, "br.lan")
	e.a.ok("network", "create", "--subnet=192.168.40.0/24", "-o", "parent=br.lan", "lan")
	e.runD(e.name("1"), "lan")
	e.a.ok("rm", "-f", e.name("1"))
	e.a.ok("network", "rm", "lan")
	if _, ok := links(t, e.sb)["br.lan"]; !ok {
		t.Fatal("network rm deleted the operator's link br.lan")
	}
}

// TestDisconnectKeepsMvlanContainers: disconnect is for namespaces made by
// others; a container made by mvlan run is removed with rm.
func TestDisconnectKeepsMvlanContainers(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	c := e.runD(e.name("1"), "pub_net")
	_, errs, code := e.a.mv("disconnect", "pub_net", c.Netns)
	if code != 1 || !strings.Contains(errs, "mvlan rm") {
		t.Fatalf("disconnect of an mvlan container: exit %d, stderr %q", code, errs)
	}
	if !netnsExists(c.Name) {
		t.Fatal("disconnect removed the container's namespace")
	}
}
