package link_test

import (
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestNetnsIDCountsDown: each namespace gets an ID below all the IDs
// given before it, by this Host or an earlier one on the same namespace
// (a restart: it goes on below the lowest there is, whoever gave it), and
// an ID someone else holds is passed over.
func TestNetnsIDCountsDown(t *testing.T) {
	nstest.RequireRoot(t)
	sb := nstest.NewSandbox(t)
	give := func(h *link.Host, ns string) int {
		t.Helper()
		id, err := h.NetnsID(ns)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := h.NetnsID(ns); err != nil || again != id {
			t.Fatalf("NetnsID(%s) again = %d, %v; want %d", ns, again, err, id)
		}
		return id
	}
	first, err := link.OpenHost(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	a, b := give(first, sb.Netns(t, "a")), give(first, sb.Netns(t, "b"))
	// Another gives one a gap below; a restart goes on below that.
	setID(t, sb.Path, sb.Netns(t, "o"), b-8)
	h, err := link.OpenHost(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := give(h, sb.Netns(t, "c"))
	// Another holds the next ID down.
	setID(t, sb.Path, sb.Netns(t, "p"), c-1)
	pathD := sb.Netns(t, "d")
	d := give(h, pathD)
	// GiveNetnsID, for a namespace just made, and for one with an ID.
	e, err := h.GiveNetnsID(sb.Netns(t, "e"))
	if err != nil {
		t.Fatal(err)
	}
	if !(a > b && b-8 > c && c-1 > d && d > e) {
		t.Fatalf("IDs a %d, b %d, another's %d, c %d, another's %d, d %d, e %d: want each below the one before", a, b, b-8, c, c-1, d, e)
	}
	if again, err := h.GiveNetnsID(pathD); err != nil || again != d {
		t.Fatalf("GiveNetnsID(d) = %d, %v; want its ID %d", again, err, d)
	}
}

// setID gives the namespace at path the ID id in the namespace at host.
func setID(t *testing.T, host, path string, id int) {
	t.Helper()
	hns, err := netns.GetFromPath(host)
	if err != nil {
		t.Fatal(err)
	}
	defer hns.Close()
	nl, err := netlink.NewHandleAt(hns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := nl.SetNetNsIdByFd(int(f.Fd()), id); err != nil {
		t.Fatalf("give %s the ID %d: %v", path, id, err)
	}
}

// TestNetnsPoolGivesIDs: with GiveIDs, a spare has its ID before lo comes
// up: the listener hears lo come up in it (a namespace without an ID is
// not heard at all), also for a spare made on the spot by Take.
func TestNetnsPoolGivesIDs(t *testing.T) {
	nstest.RequireRoot(t)
	sb := nstest.NewSandbox(t)
	h, err := link.OpenHost(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := watch(t, h)
	p := link.NewNetnsPool(1, nil)
	defer p.Close()
	p.GiveIDs(h)
	s, err := p.Take() // none made ahead yet: made now
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := h.NetnsID(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	for timeout := time.After(2 * time.Second); ; {
		select {
		case ev := <-got:
			if ev.NSID == id && !ev.Overflow {
				return
			}
		case <-timeout:
			t.Fatalf("nothing heard from the spare (ID %d) in 2 s: it had no ID when lo came up", id)
		}
	}
}
