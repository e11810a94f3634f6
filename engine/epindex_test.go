package engine

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/dhcp"
)

// routesOnly is a Host that keeps only the routes through host shims.
type routesOnly struct {
	Host
	mu     sync.Mutex
	routes map[netip.Addr]bool
}

func (h *routesOnly) SetShimRoutes(_ string, _, dsts []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.routes = map[netip.Addr]bool{}
	for _, d := range dsts {
		h.routes[d] = true
	}
	return nil
}

func (h *routesOnly) AddShimRoutes(_ string, _, dsts []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range dsts {
		h.routes[d] = true
	}
	return nil
}

func (h *routesOnly) DeleteShimRoutes(_ string, dsts []netip.Addr) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range dsts {
		delete(h.routes, d)
	}
	return nil
}

func (h *routesOnly) has(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.routes[a]
}

// TestExpiredLeaseIndex: endpoint c2's lease of X expired (X stays in
// its record, off its link) and the server gave X to c3. The index names
// c3 for X however c2 goes on: its failed tries (settleTry), its new
// lease of another address, its removal; so the host shim keeps its
// route to X (c3's), Holder names c3, and c3's X is refused to others.
// Loaded in either order (a start), the index names c3 too.
func TestExpiredLeaseIndex(t *testing.T) {
	x, y := netip.MustParsePrefix("10.6.0.70/24"), netip.MustParsePrefix("10.6.0.71/24")
	now := time.Now()
	lease := func(p netip.Prefix, st dhcp.State) *dhcp.Lease {
		return &dhcp.Lease{State: st, Addr: p, Obtained: now, Renew: now.Add(time.Hour), Rebind: now.Add(2 * time.Hour), Expiry: now.Add(3 * time.Hour)}
	}
	c2 := endpoint{ID: "e2", Name: "c2", State: Ready, Addrs: []netip.Prefix{x}, Lease: lease(x, dhcp.Expired)}
	c3 := endpoint{ID: "e3", Name: "c3", State: Ready, Addrs: []netip.Prefix{x}, Lease: lease(x, dhcp.Bound)}
	h := &routesOnly{Host: addrsOnly{}, routes: map[netip.Addr]bool{}}
	n := dhcpNet(t)
	n.shim = &shimState{addrs: []netip.Addr{netip.MustParseAddr("10.6.0.2")}}
	a := &Engine{nets: map[string]*network{n.ID: n}, host: h, log: slog.New(slog.DiscardHandler)}
	en2 := n.add(c2)
	en2.busy.Unlock()
	if why := a.leaseRefuse(n, c3)(x.Addr()); why != "" {
		t.Fatalf("c3 refuses c2's expired %s: %s", x.Addr(), why)
	}
	en3 := n.add(endpoint{ID: c3.ID, Name: c3.Name, State: Ready}) // attached, then leased
	n.mu.Lock()
	n.set(en3, c3)
	n.mu.Unlock()
	en3.busy.Unlock()
	a.shimRoutesAdded(n, en3)
	wantHolder := func(when string) {
		t.Helper()
		if hd, _, err := a.Holder(n.ID, x.Addr()); err != nil || hd.Endpoint != "c3" {
			t.Errorf("%s: holder of %s is %q (%v), want c3", when, x.Addr(), hd.Endpoint, err)
		}
		if why := a.leaseRefuse(n, endpoint{ID: "e9"})(x.Addr()); !strings.Contains(why, "endpoint c3") {
			t.Errorf("%s: %s offered to another endpoint refused as %q, want as c3's", when, x.Addr(), why)
		}
		if !h.has(x.Addr()) {
			t.Errorf("%s: the host shim has no route to c3's %s", when, x.Addr())
		}
	}
	wantHolder("c3 leased it")
	a.settleTry(n, en2, false, time.Now(), dhcp.Lease{}, errors.New("no DHCP server answered"))
	wantHolder("c2's try failed")
	next := c2
	next.Addrs, next.Lease = []netip.Prefix{y}, lease(y, dhcp.Bound)
	en2.busy.Lock()
	n.mu.Lock()
	n.set(en2, next)
	n.mu.Unlock()
	en2.busy.Unlock()
	if err := a.syncShimRoutes(n); err != nil {
		t.Fatal(err)
	}
	wantHolder("c2 leased another address")
	n.mu.Lock()
	n.drop(en2)
	n.mu.Unlock()
	a.shimRoutesRemoved(n, en2)
	wantHolder("c2 removed")

	for _, order := range [][]endpoint{{c2, c3}, {c3, c2}} {
		m := dhcpNet(t)
		for _, e := range order {
			m.add(e).busy.Unlock()
		}
		if en := m.byAddr[x.Addr()]; en == nil || en.ep.Name != "c3" || !slices.Contains(en.ep.Addrs, x) {
			t.Errorf("loaded %s then %s: %s indexed as %s's, want c3's", order[0].Name, order[1].Name, x.Addr(), nameOf(en))
		}
	}
}

// nameOf is en's endpoint's name, "nobody" for none.
func nameOf(en *entry) string {
	if en == nil {
		return "nobody"
	}
	return en.ep.Name
}

// TestReindexAddrs: after unindexing one of two records that share an
// address, reindexAddrs gives the address to the other, whichever was
// indexed last, unless the other's lease of it expired (it may not use
// it); an address no other has stays out.
func TestReindexAddrs(t *testing.T) {
	x, y := netip.MustParsePrefix("10.6.0.70/24"), netip.MustParsePrefix("10.6.0.71/24")
	expired := &dhcp.Lease{State: dhcp.Expired, Addr: x}
	for _, tc := range []struct {
		name       string
		first, out endpoint // indexed in this order; out is unindexed
		want       map[netip.Prefix]string
	}{
		{"the later one out", endpoint{ID: "a", Name: "a", Addrs: []netip.Prefix{x}}, endpoint{ID: "b", Name: "b", Addrs: []netip.Prefix{y, x}},
			map[netip.Prefix]string{x: "a", y: ""}},
		{"the earlier one out", endpoint{ID: "b", Name: "b", Addrs: []netip.Prefix{x}}, endpoint{ID: "a", Name: "a", Addrs: []netip.Prefix{x}},
			map[netip.Prefix]string{x: "b"}},
		{"the other's lease of it expired", endpoint{ID: "a", Name: "a", Addrs: []netip.Prefix{x}, Lease: expired},
			endpoint{ID: "b", Name: "b", Addrs: []netip.Prefix{x}}, map[netip.Prefix]string{x: ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &network{ID: "n1"}
			n.initIndex()
			n.add(tc.first).busy.Unlock()
			en := n.add(tc.out)
			en.busy.Unlock()
			n.unindex(en)
			n.reindexAddrs(tc.out.Addrs)
			for p, want := range tc.want {
				got := ""
				if e := n.byAddr[p.Addr()]; e != nil {
					got = e.ep.Name
				}
				if got != want {
					t.Errorf("byAddr[%s] = %q, want %q", p.Addr(), got, want)
				}
			}
		})
	}
}
