package link_test

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestAddrsIPv4LinkLocal: an IPv4 link-local address (169.254/16, which a
// network may use) is listed like any other; only IPv6 link-local ones
// (fe80::/10, the kernel's own) are left out, by Addrs and Host.Addrs.
func TestAddrsIPv4LinkLocal(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	sb.Run(t, sb.Path, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")
	for _, a := range []string{"169.254.10.5/24", "10.77.0.2/24", "fd77::2/64", "fe80::77/64"} {
		sb.Run(t, sb.Path, "ip", "addr", "add", a, "dev", "eth0", "nodad")
	}
	in, err := h.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	got, err := link.Addrs(sb.Path, in.Index)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if want := prefixes("10.77.0.2/24", "169.254.10.5/24", "fd77::2/64"); !slices.Equal(got, want) {
		t.Errorf("Addrs = %v; want %v (no fe80::)", got, want)
	}
	hg, err := h.Addrs("eth0")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(hg, netip.Addr.Compare)
	if want := addrs("10.77.0.2", "169.254.10.5", "fd77::2"); !slices.Equal(hg, want) {
		t.Errorf("Host.Addrs = %v; want %v (no fe80::)", hg, want)
	}
}

// TestSetShimAddrsIPv4LinkLocal: a shim on a 169.254/16 network keeps its
// address over SetShimAddrs (no EEXIST from adding it again), loses one
// it no longer has, and keeps its IPv6 link-local.
func TestSetShimAddrsIPv4LinkLocal(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	first := addrs("169.254.10.2", "169.254.10.3", "fd77::2")
	if err := h.CreateShim(t.Context(), link.ShimSpec{Name: "mvh-ll", Parent: "eth0", MAC: net.HardwareAddr{2, 0, 0, 0, 0x77, 3},
		Alias: "mvlan/test/shim/ll", Addrs: first}); err != nil {
		t.Fatal(err)
	}
	check := func(what string, want []netip.Addr) {
		t.Helper()
		got, err := h.Addrs("mvh-ll")
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, netip.Addr.Compare)
		if !slices.Equal(got, want) {
			t.Errorf("%s: shim addresses %v; want %v", what, got, want)
		}
	}
	for range 2 {
		if err := h.SetShimAddrs("mvh-ll", first); err != nil {
			t.Fatalf("SetShimAddrs(%v) on a shim that has them: %v", first, err)
		}
	}
	check("after SetShimAddrs", first)
	second := addrs("169.254.10.2", "fd77::2")
	if err := h.SetShimAddrs("mvh-ll", second); err != nil {
		t.Fatal(err)
	}
	check("after SetShimAddrs without 169.254.10.3", second)
	mustContain(t, "shim's addresses", sb.Run(t, sb.Path, "ip", "-6", "addr", "show", "dev", "mvh-ll"), "fe80::")
}
