package engine

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/dhcp"
)

// TestResolvConf: what a lease puts in resolv.conf (at most three
// nameservers, the search list before the domain, nothing without
// either), and that only the endpoint that wrote the file removes it.
func TestResolvConf(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	base := dhcp.Lease{Addr: netip.MustParsePrefix("192.168.60.100/24"), Server: a("192.168.60.1")}
	for _, tc := range []struct {
		name   string
		dns    []netip.Addr
		domain string
		search []string
		want   string
	}{
		{name: "nothing", want: ""},
		{name: "servers", dns: []netip.Addr{a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.3"), a("10.0.0.4")},
			want: "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"},
		{name: "domain", dns: []netip.Addr{a("10.0.0.1")}, domain: "lan.example", want: "nameserver 10.0.0.1\nsearch lan.example\n"},
		{name: "search wins", domain: "lan.example", search: []string{"a.example", "b.example"}, want: "search a.example b.example\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := base
			l.DNS, l.Domain, l.Search = tc.dns, tc.domain, tc.search
			got := resolvConf("ID1", l)
			if tc.want == "" {
				if got != "" {
					t.Fatalf("got %q, want none", got)
				}
				return
			}
			first, rest, _ := strings.Cut(got, "\n")
			if !strings.HasPrefix(first, "# mvlan endpoint ID1: ") || rest != tc.want {
				t.Errorf("got\n%s\nwant the endpoint's header line, then\n%s", got, tc.want)
			}
		})
	}

	netnsEtc = t.TempDir()
	defer func() { netnsEtc = "/etc/netns" }()
	l := base
	l.DNS = []netip.Addr{a("10.0.0.1")}
	old, cur := endpoint{ID: "OLD", Name: "c1", OwnsNetns: true}, endpoint{ID: "NEW", Name: "c1", OwnsNetns: true}
	if err := writeResolv(cur, nil, l); err != nil {
		t.Fatal(err)
	}
	if err := removeResolv(old); err != nil { // a removal of the name's former container
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsEtc, "c1", "resolv.conf")); err != nil {
		t.Fatalf("another endpoint's removal deleted c1's resolv.conf: %v", err)
	}
	if err := removeResolv(cur); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsEtc, "c1")); !os.IsNotExist(err) {
		t.Errorf("%s/c1 left after its endpoint's removal: %v", netnsEtc, err)
	}
	if err := writeResolv(endpoint{ID: "X", Name: "c2"}, nil, l); err != nil { // connect: not ours
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netnsEtc, "c2")); !os.IsNotExist(err) {
		t.Errorf("resolv.conf written for a namespace mvlan did not make: %v", err)
	}
}
