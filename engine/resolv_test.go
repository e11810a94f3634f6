package engine

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestResolvRewrittenInPlace: a renewal that changes the DNS servers
// rewrites resolv.conf in its inode, which `ip netns exec` bind-mounts on
// /etc/resolv.conf of processes already running: one that holds the file
// open (as the bind mount holds its inode) reads the new servers, and
// nothing of the old text is left at its end.
func TestResolvRewrittenInPlace(t *testing.T) {
	netnsEtc = t.TempDir()
	defer func() { netnsEtc = "/etc/netns" }()
	e := endpoint{ID: "ID1", Name: "c1", OwnsNetns: true}
	old := dhcp.Lease{Addr: netip.MustParsePrefix("192.168.60.100/24"), DNS: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}, Domain: "lan.example"}
	if err := writeResolv(e, nil, old); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(netnsEtc, "c1", "resolv.conf")
	held, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	renewed := old
	renewed.DNS, renewed.Domain = []netip.Addr{netip.MustParseAddr("10.9.9.9")}, ""
	if err := writeResolv(e, &old, renewed); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _ := held.ReadAt(buf, 0)
	if got, want := string(buf[:n]), resolvConf(e.ID, renewed); got != want {
		t.Errorf("the file as a running process sees it after the renewal:\n%s\nwant\n%s", got, want)
	}
}

// TestResolvSymlinkReplaced: a resolv.conf that is a symlink (an operator
// pointed it at the host's) is replaced by mvlan's file, never written
// through: the link's target keeps its text.
func TestResolvSymlinkReplaced(t *testing.T) {
	netnsEtc = t.TempDir()
	defer func() { netnsEtc = "/etc/netns" }()
	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(netnsEtc, "c1", "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, p); err != nil {
		t.Fatal(err)
	}
	e := endpoint{ID: "ID1", Name: "c1", OwnsNetns: true}
	l := dhcp.Lease{Addr: netip.MustParsePrefix("192.168.60.100/24"), DNS: []netip.Addr{netip.MustParseAddr("10.9.9.9")}}
	if err := writeResolv(e, nil, l); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(host); string(got) != "nameserver 192.0.2.53\n" {
		t.Errorf("the symlink's target after the write: %q; want it untouched", got)
	}
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s after the write: %v %v; want mvlan's regular file", p, fi, err)
	}
	if got, _ := os.ReadFile(p); string(got) != resolvConf(e.ID, l) {
		t.Errorf("%s: %q; want the lease's", p, got)
	}
}

// TestResolvUmask: under the agent unit's umask (0077) the resolv.conf a
// lease writes is still 0644 in directories of 0755: a container's
// non-root processes read it as /etc/resolv.conf. One left 0600 (by an
// older agent) is 0644 after its next rewrite.
func TestResolvUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	netnsEtc = filepath.Join(t.TempDir(), "etc", "netns") // made by the write
	defer func() { netnsEtc = "/etc/netns" }()
	l := dhcp.Lease{Addr: netip.MustParsePrefix("192.168.60.100/24"), DNS: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	if err := writeResolv(endpoint{ID: "ID1", Name: "c1", OwnsNetns: true}, nil, l); err != nil {
		t.Fatal(err)
	}
	// One an older agent wrote 0600 is 0644 once rewritten in place.
	if err := os.Chmod(resolvPath("c1"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.DNS = append(l.DNS, netip.MustParseAddr("10.0.0.2"))
	if err := writeResolv(endpoint{ID: "ID1", Name: "c1", OwnsNetns: true}, nil, l); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Dir(netnsEtc): os.ModeDir | 0o755, netnsEtc: os.ModeDir | 0o755,
		filepath.Join(netnsEtc, "c1"): os.ModeDir | 0o755, resolvPath("c1"): 0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
		}
	}
}
