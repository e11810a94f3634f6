package link_test

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestShimRoutes: AddShimRoutes and DeleteShimRoutes change only the
// routes they are given (link scope, proto 109, the shim's address as the
// source), idempotently; a route of someone else's to the same address
// stays; SetShimRoutes makes the set exact.
func TestShimRoutes(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	sb.Run(t, sb.Path, "ip", "addr", "add", "10.77.0.2/32", "dev", "eth0")
	srcs := []netip.Addr{netip.MustParseAddr("10.77.0.2")}
	addr := func(s string) netip.Addr { return netip.MustParseAddr("10.77.0." + s) }
	routes := func() []string {
		out := sb.Run(t, sb.Path, "ip", "-4", "-o", "route", "show", "dev", "eth0", "proto", "109", "scope", "link")
		var dsts []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				mustContain(t, "shim route", line, "src 10.77.0.2")
				dsts = append(dsts, f[0])
			}
		}
		slices.Sort(dsts)
		return dsts
	}
	want := func(what string, dsts ...string) {
		t.Helper()
		if got := routes(); !slices.Equal(got, dsts) {
			t.Fatalf("%s: routes %v, want %v", what, got, dsts)
		}
	}
	if err := h.AddShimRoutes("eth0", srcs, []netip.Addr{addr("5"), addr("6")}); err != nil {
		t.Fatal(err)
	}
	want("add .5 .6", "10.77.0.5", "10.77.0.6")
	if err := h.AddShimRoutes("eth0", srcs, []netip.Addr{addr("6"), addr("7")}); err != nil {
		t.Fatal(err)
	}
	want("add .6 .7", "10.77.0.5", "10.77.0.6", "10.77.0.7")
	sb.Run(t, sb.Path, "ip", "route", "add", "10.77.0.50", "dev", "eth0", "proto", "static")
	if err := h.DeleteShimRoutes("eth0", []netip.Addr{addr("5"), addr("99"), addr("50")}); err != nil {
		t.Fatalf("delete .5, .99 (none) and .50 (not ours): %v", err)
	}
	want("delete .5", "10.77.0.6", "10.77.0.7")
	if out := sb.Run(t, sb.Path, "ip", "-4", "route", "show", "10.77.0.50"); !strings.Contains(out, "proto static") {
		t.Errorf("the static route to 10.77.0.50 went: %q", out)
	}
	if err := h.SetShimRoutes("eth0", srcs, []netip.Addr{addr("7"), addr("8")}); err != nil {
		t.Fatal(err)
	}
	want("set .7 .8", "10.77.0.7", "10.77.0.8")

	// IPv6: a /128 with the shim's IPv6 address as the source, deleted
	// again; the IPv4 routes stay.
	sb.Run(t, sb.Path, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0")
	sb.Run(t, sb.Path, "ip", "addr", "add", "fd77::2/128", "dev", "eth0", "nodad")
	srcs = append(srcs, netip.MustParseAddr("fd77::2"))
	v6 := netip.MustParseAddr("fd77::5")
	routes6 := func() string {
		return strings.TrimSpace(sb.Run(t, sb.Path, "ip", "-6", "-o", "route", "show", "dev", "eth0", "proto", "109"))
	}
	if err := h.AddShimRoutes("eth0", srcs, []netip.Addr{v6}); err != nil {
		t.Fatal(err)
	}
	if got := routes6(); !strings.HasPrefix(got, "fd77::5 ") || !strings.Contains(got, "src fd77::2") {
		t.Fatalf("IPv6 shim routes %q, want fd77::5 from fd77::2", got)
	}
	if err := h.DeleteShimRoutes("eth0", []netip.Addr{v6}); err != nil {
		t.Fatal(err)
	}
	if got := routes6(); got != "" {
		t.Fatalf("IPv6 shim routes after the delete: %q", got)
	}
	want("after IPv6", "10.77.0.7", "10.77.0.8")
}

// TestSetShimAddrsSysctls: a shim an older agent made, with the host's
// ARP and IPv6 defaults, gets arp_ignore=1, arp_announce=2 and
// addr_gen_mode=0 from SetShimAddrs (the attach on start and on link
// events), not only from CreateShim.
func TestSetShimAddrsSysctls(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	addrs := []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd77::2")}
	if err := h.CreateShim(t.Context(), link.ShimSpec{Name: "mvh-t", Parent: "eth0", MAC: net.HardwareAddr{2, 0, 0, 0, 0x77, 2},
		Alias: "mvlan/test/shim/t", Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	conf := func(k string) string { return sysctl(t, sb, sb.Path, k) }
	check := func(what string) {
		t.Helper()
		for k, v := range map[string]string{"ipv4/conf/mvh-t/arp_ignore": "1", "ipv4/conf/mvh-t/arp_announce": "2", "ipv6/conf/mvh-t/addr_gen_mode": "0"} {
			if got := conf(k); got != v {
				t.Errorf("%s: %s = %s, want %s", what, k, got, v)
			}
		}
	}
	check("made")
	for k, v := range map[string]string{"ipv4/conf/mvh-t/arp_ignore": "0", "ipv4/conf/mvh-t/arp_announce": "0", "ipv6/conf/mvh-t/addr_gen_mode": "1"} {
		sb.Run(t, sb.Path, "sh", "-c", "echo "+v+" > /proc/sys/net/"+k)
	}
	if got := conf("ipv4/conf/mvh-t/arp_ignore"); got != "0" {
		t.Fatalf("arp_ignore reset to %s", got)
	}
	for range 2 {
		if err := h.SetShimAddrs("mvh-t", addrs); err != nil {
			t.Fatal(err)
		}
		check("after SetShimAddrs")
	}
}
