package link_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestHandoff: CreateHandoff leaves a DOWN macvlan slave with the MAC and
// alias under a temporary name in the host namespace; moved and renamed by
// someone else (as Docker does) it keeps its alias; moved back, it is
// deleted by its alias.
func TestHandoff(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	h.SetTag("abcdef12")
	c1 := sb.Netns(t, "c1")
	m := mac(t, "02:42:ac:10:56:0a")
	const alias = "mvlan/test/ep/1"
	name, err := h.CreateHandoff(context.Background(), link.HandoffSpec{Parent: "eth0", Mode: "bridge", MAC: m, Alias: alias})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, link.TempPrefixFor("abcdef12")) || len(name) > link.MaxNameLen {
		t.Errorf("handoff link %q: want a temporary name of %s", name, link.TempPrefixFor("abcdef12"))
	}
	l, err := h.Link(name)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := h.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "macvlan" || l.Up || l.Alias != alias || !bytes.Equal(l.MAC, m) || l.ParentIndex != parent.Index {
		t.Errorf("handoff link: %+v; want a DOWN macvlan of eth0 with MAC %s and alias %s", l, m, alias)
	}

	// What Docker does with it: move, rename, bring up.
	sb.Run(t, sb.Path, "ip", "link", "set", name, "netns", c1)
	sb.Run(t, c1, "ip", "link", "set", name, "name", "eth0")
	sb.Run(t, c1, "ip", "link", "set", "eth0", "up")
	links, err := link.EndpointLinks(c1)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range links {
		found = found || (in.Name == "eth0" && in.Alias == alias && in.Up)
	}
	if !found {
		t.Errorf("moved link lost its alias or state: %+v", links)
	}
	// And back, under its first name (Docker's Leave), then deleted.
	sb.Run(t, c1, "ip", "link", "set", "eth0", "down")
	sb.Run(t, c1, "ip", "link", "set", "eth0", "name", name)
	sb.Run(t, c1, "ip", "link", "set", name, "netns", sb.Path)
	if err := h.DeleteByAlias(alias); err != nil {
		t.Fatal(err)
	}
	sameLinks(t, h, "", []string{"eth0", "lo"})

	// Failures leave nothing: a missing parent, a multicast MAC.
	if _, err := h.CreateHandoff(context.Background(), link.HandoffSpec{Parent: "nosuch0", MAC: m, Alias: alias}); err == nil {
		t.Error("CreateHandoff on a missing parent succeeded")
	}
	if _, err := h.CreateHandoff(context.Background(), link.HandoffSpec{Parent: "eth0", MAC: mac(t, "03:00:00:00:00:01")}); err == nil {
		t.Error("CreateHandoff with a multicast MAC succeeded")
	}
	sameLinks(t, h, "", []string{"eth0", "lo"})
}
