package netconf

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
)

func TestParseReferenceExamples(t *testing.T) {
	tests := []struct {
		name   string
		req    api.NetworkCreate
		parent string
		mode   string
		pools  int
	}{
		{"pub_net", api.NetworkCreate{Name: "pub_net", Driver: "macvlan", Subnets: []string{"172.16.86.0/24"},
			Gateways: []string{"172.16.86.1"}, Options: []string{"parent=eth0"}}, "eth0", "bridge", 1},
		{"aux", api.NetworkCreate{Name: "pub_net", Subnets: []string{"172.16.86.0/24"}, Gateways: []string{"172.16.86.1"},
			AuxAddrs: []string{`exclude_host=172.16.86.250`}, Options: []string{"parent=eth0"}}, "eth0", "bridge", 1},
		{"macvlan60 with stray -o", api.NetworkCreate{Name: "macvlan60", Subnets: []string{"192.168.60.0/24"},
			Gateways: []string{"192.168.60.1"}, Options: []string{"parent=eth0.60", "-o", "macvlan_mode=bridge"}}, "eth0.60", "bridge", 1},
		{"mcv101", api.NetworkCreate{Name: "mcv101", Subnets: []string{"10.1.20.0/24", "10.1.10.0/24"},
			Gateways: []string{"10.1.20.1", "10.1.10.1"}, Options: []string{"parent=eth0.101"}}, "eth0.101", "bridge", 2},
		{"macvlan216", api.NetworkCreate{Name: "macvlan216", IPv6: true,
			Subnets:  []string{"192.168.216.0/24", "192.168.218.0/24", "2001:db8:abc8::/64"},
			Gateways: []string{"192.168.216.1", "192.168.218.1", "2001:db8:abc8::10"},
			Options:  []string{"parent=eth0.218", "macvlan_mode=bridge"}}, "eth0.218", "bridge", 3},
		{"mcv0", api.NetworkCreate{Name: "mcv0", IPv6: true,
			Subnets:  []string{"192.168.136.0/24", "192.168.138.0/24", "fd11::/64"},
			IPRanges: []string{"192.168.136.0/25", "192.168.138.0/25"},
			AuxAddrs: []string{"reserved1=fd11::2", "reserved2=192.168.136.2", "reserved3=192.168.138.2"},
			Options:  []string{"parent=eth0"}}, "eth0", "bridge", 3},
		{"empty macvlan_mode", api.NetworkCreate{Name: "e", Subnets: []string{"10.9.0.0/24"},
			Options: []string{"parent=eth0", "macvlan_mode="}}, "eth0", "bridge", 1},
		{"no parent, private", api.NetworkCreate{Name: "internal1", Subnets: []string{"10.9.0.0/24"},
			Options: []string{"macvlan_mode=private"}}, "", "private", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.req)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.Parent != tt.parent || c.Mode != tt.mode || len(c.Pools) != tt.pools {
				t.Fatalf("got parent %q mode %q pools %d, want %q %q %d", c.Parent, c.Mode, len(c.Pools), tt.parent, tt.mode, tt.pools)
			}
		})
	}
}

// TestParseMapped: an IPv4-mapped prefix of 96 bits or more is its IPv4
// prefix.
func TestParseMapped(t *testing.T) {
	c, err := Parse(api.NetworkCreate{Name: "n", Subnets: []string{"::ffff:10.0.0.0/104"}, IPRanges: []string{"::ffff:10.0.1.0/120"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Pools[0]; p.Subnet != netip.MustParsePrefix("10.0.0.0/8") || p.IPRange != netip.MustParsePrefix("10.0.1.0/24") {
		t.Fatalf("pool %+v, want subnet 10.0.0.0/8, ip-range 10.0.1.0/24", p)
	}
}

func TestParseGatewayPairing(t *testing.T) {
	c, err := Parse(api.NetworkCreate{Name: "n", Subnets: []string{"10.1.20.0/24", "10.1.10.0/24"},
		Gateways: []string{"10.1.10.1", "10.1.20.254"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Pools[0].Gateway; got != netip.MustParseAddr("10.1.20.254") {
		t.Fatalf("gateway of 10.1.20.0/24 = %v, want 10.1.20.254 (paired by containment, not order)", got)
	}
}

// TestParseQuoted: quotes around a whole KEY=VALUE item, as a shell
// passes them on when they were quoted twice, or around its VALUE are
// dropped: they are part of neither the name nor the address.
func TestParseQuoted(t *testing.T) {
	for _, tc := range []struct{ aux, label string }{
		{`h=172.16.86.5`, `team=net`},
		{`"h=172.16.86.5"`, `"team=net"`},
		{`h="172.16.86.5"`, `team="net"`},
		{` "h=172.16.86.5" `, ` "team=net" `},
	} {
		c, err := Parse(api.NetworkCreate{Name: "n", Subnets: []string{"172.16.86.0/24"},
			AuxAddrs: []string{tc.aux}, Labels: []string{tc.label}})
		if err != nil {
			t.Errorf("Parse(--aux-address %s --label %s): %v", tc.aux, tc.label, err)
			continue
		}
		if got := c.Pools[0].Aux; len(got) != 1 || got["h"] != netip.MustParseAddr("172.16.86.5") {
			t.Errorf("--aux-address %s: aux %v, want h=172.16.86.5", tc.aux, got)
		}
		if got := c.Labels; len(got) != 1 || got["team"] != "net" {
			t.Errorf("--label %s: labels %v, want team=net", tc.label, got)
		}
	}
}

// labels returns n labels "kI=VALUE" with values of size bytes.
func labels(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d=%s", i, strings.Repeat("v", size))
	}
	return out
}

// TestParseLimits: the limits themselves are accepted, and a /31 or /127
// (point-to-point) gives the gateway and one address.
func TestParseLimits(t *testing.T) {
	r := api.NetworkCreate{Name: "n1", Subnets: []string{"10.0.0.0/8"}, Labels: labels(MaxLabels, MaxLabelValue)}
	r.Labels[0] = strings.Repeat("k", MaxLabelKey) + "=v"
	if c, err := Parse(r); err != nil || len(c.Labels) != MaxLabels {
		t.Fatalf("Parse at the limits: %d labels, %v", len(c.Labels), err)
	}
	for _, subnet := range []string{"2001:db8::/32", "172.30.50.0/31", "2001:db8::2/127"} {
		if _, err := Parse(api.NetworkCreate{Name: "n1", IPv6: strings.Contains(subnet, ":"), Subnets: []string{subnet}}); err != nil {
			t.Errorf("Parse(--subnet %s): %v", subnet, err)
		}
	}
}

// TestParseBadInput: each error names the bad value and hints at what is right.
func TestParseBadInput(t *testing.T) {
	base := func(mod func(*api.NetworkCreate)) api.NetworkCreate {
		r := api.NetworkCreate{Name: "n1", Subnets: []string{"172.16.86.0/24"}, Options: []string{"parent=eth0"}}
		mod(&r)
		return r
	}
	tests := []struct {
		name string
		req  api.NetworkCreate
		want []string
	}{
		{"unknown driver", base(func(r *api.NetworkCreate) { r.Driver = "bridge" }), []string{`"bridge"`, "macvlan"}},
		{"malformed cidr", base(func(r *api.NetworkCreate) { r.Subnets = []string{"172.16.86.0/33"} }), []string{"172.16.86.0/33", "CIDR"}},
		{"not an address", base(func(r *api.NetworkCreate) { r.Subnets = []string{"banana"} }), []string{"banana"}},
		{"host bits", base(func(r *api.NetworkCreate) { r.Subnets = []string{"172.16.86.5/24"} }), []string{"172.16.86.5/24", "172.16.86.0/24"}},
		{"mapped, under 96 bits", base(func(r *api.NetworkCreate) { r.Subnets = []string{"::ffff:10.0.0.0/8"} }),
			[]string{`"::ffff:10.0.0.0/8"`, "96 bits", "IPv4 form, 10.0.0.0/8", "::ffff:10.0.0.0/104"}},
		{"mapped range, under 96 bits", base(func(r *api.NetworkCreate) { r.IPRanges = []string{"::ffff:172.16.86.128/64"} }),
			[]string{`--ip-range "::ffff:172.16.86.128/64"`, "IPv4 form, 172.16.86.128/LEN"}},
		{"gateway outside", base(func(r *api.NetworkCreate) { r.Gateways = []string{"10.0.0.1"} }), []string{"10.0.0.1"}},
		{"bad gateway", base(func(r *api.NetworkCreate) { r.Gateways = []string{"10.0.0.300"} }), []string{"10.0.0.300"}},
		{"range outside", base(func(r *api.NetworkCreate) { r.IPRanges = []string{"10.0.0.0/25"} }), []string{"10.0.0.0/25"}},
		{"aux outside", base(func(r *api.NetworkCreate) { r.AuxAddrs = []string{"h=10.0.0.9"} }), []string{"10.0.0.9"}},
		{"aux malformed", base(func(r *api.NetworkCreate) { r.AuxAddrs = []string{"172.16.86.9"} }), []string{"172.16.86.9", "NAME=IP"}},
		{"two gateways", base(func(r *api.NetworkCreate) { r.Gateways = []string{"172.16.86.1", "172.16.86.2"} }), []string{"172.16.86.2"}},
		{"v6 without --ipv6", base(func(r *api.NetworkCreate) { r.Subnets = append(r.Subnets, "2001:db8::/64") }), []string{"2001:db8::/64", "--ipv6"}},
		{"--ipv6 without v6 subnet", base(func(r *api.NetworkCreate) { r.IPv6 = true }), []string{"--ipv6", "IPv6 --subnet"}},
		{"overlap inside network", base(func(r *api.NetworkCreate) { r.Subnets = []string{"10.1.0.0/16", "10.1.2.0/24"} }), []string{"10.1.2.0/24", "10.1.0.0/16"}},
		{"unknown mode", base(func(r *api.NetworkCreate) { r.Options = []string{"macvlan_mode=bridged"} }), []string{`"bridged"`, "bridge, private, vepa, passthru"}},
		{"unknown option", base(func(r *api.NetworkCreate) { r.Options = []string{"parnet=eth0"} }), []string{"parnet=eth0", "parent=IFNAME"}},
		{"a stray token", base(func(r *api.NetworkCreate) { r.Options = []string{"parent=eth0", "-typo"} }), []string{`unknown option "-typo"`}},
		{"RAs without IPv6", base(func(r *api.NetworkCreate) { r.Options = append(r.Options, "ipv6_ra=accept", "ipv6_ra_source=fe80::1") }),
			[]string{"option ipv6_ra=accept on a network without IPv6", "--ipv6"}},
		{"empty parent", base(func(r *api.NetworkCreate) { r.Options = []string{"parent="} }), []string{"parent="}},
		{"two parents", base(func(r *api.NetworkCreate) { r.Options = []string{"parent=eth0", "parent=eth1"} }),
			[]string{"option parent is given twice", `"eth0" and "eth1"`, "give it once"}},
		{"two modes", base(func(r *api.NetworkCreate) { r.Options = append(r.Options, "macvlan_mode=", "macvlan_mode=vepa") }),
			[]string{"option macvlan_mode is given twice", `"bridge" and "vepa"`}},
		{"allow_router twice", base(func(r *api.NetworkCreate) { r.Options = append(r.Options, "allow_router=true", "allow_router=false") }),
			[]string{"option allow_router is given twice"}},
		{"no subnet", base(func(r *api.NetworkCreate) { r.Subnets = nil }), []string{"--subnet"}},
		{"bad name", base(func(r *api.NetworkCreate) { r.Name = "my net" }), []string{`"my net"`}},
		{"missing name", base(func(r *api.NetworkCreate) { r.Name = "" }), []string{"name is missing"}},
		{"bad ipam opt", base(func(r *api.NetworkCreate) { r.IPAMOptions = []string{"allocation=random"} }), []string{"allocation=random", "serial"}},
		{"/32", base(func(r *api.NetworkCreate) { r.Subnets = []string{"172.30.50.0/32"} }), []string{"172.30.50.0/32", "single address", "/31"}},
		{"/128", base(func(r *api.NetworkCreate) { r.IPv6, r.Subnets = true, []string{"fd00::7/128"} }), []string{"fd00::7/128", "single address"}},
		{"::/0", base(func(r *api.NetworkCreate) { r.IPv6, r.Subnets = true, []string{"::/0"} }), []string{"::/0", "wider than /32", "layer-2 segment"}},
		{"0.0.0.0/0", base(func(r *api.NetworkCreate) { r.Subnets = []string{"0.0.0.0/0"} }), []string{"0.0.0.0/0", "wider than /8"}},
		{"multicast", base(func(r *api.NetworkCreate) { r.Subnets = []string{"224.0.0.0/24"} }), []string{"224.0.0.0/24", "multicast", "172.16.86.0/24"}},
		{"loopback", base(func(r *api.NetworkCreate) { r.Subnets = []string{"127.0.0.0/8"} }), []string{"127.0.0.0/8", "loopback"}},
		{"this network", base(func(r *api.NetworkCreate) { r.Subnets = []string{"0.0.0.0/8"} }), []string{"0.0.0.0/8", `"this network"`}},
		{"v6 multicast", base(func(r *api.NetworkCreate) { r.IPv6, r.Subnets = true, []string{"ff05::/64"} }), []string{"ff05::/64", "multicast"}},
		{"v6 loopback", base(func(r *api.NetworkCreate) { r.IPv6, r.Subnets = true, []string{"::/64"} }), []string{"::/64", "loopback"}},
		{"v6 link-local", base(func(r *api.NetworkCreate) { r.IPv6, r.Subnets = true, []string{"fe80::/64"} }), []string{"fe80::/64", "link-local"}},
		{"v4 wider than /8", base(func(r *api.NetworkCreate) { r.Subnets = []string{"10.0.0.0/7"} }), []string{"10.0.0.0/7", "wider than /8"}},
		{"v6 wider than /32", base(func(r *api.NetworkCreate) { r.IPv6, r.Subnets = true, []string{"2001:db8::/31"} }), []string{"2001:db8::/31", "wider than /32"}},
		{"too many labels", base(func(r *api.NetworkCreate) { r.Labels = labels(MaxLabels+1, 1) }), []string{"257 labels", "at most 256"}},
		{"label value too long", base(func(r *api.NetworkCreate) { r.Labels = []string{"big=" + strings.Repeat("v", MaxLabelValue+1)} }),
			[]string{`"big"`, "4097 bytes", "at most 4096"}},
		{"label key too long", base(func(r *api.NetworkCreate) { r.Labels = []string{strings.Repeat("k", 3000) + "=v"} }),
			[]string{"kkkk", "3000 bytes", "at most 256"}},
		{"label key with a newline", base(func(r *api.NetworkCreate) { r.Labels = []string{"a\nb=v"} }), []string{`"a\nb"`, "control character"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.req)
			if err == nil {
				t.Fatal("Parse accepted bad input")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// FuzzParse feeds arbitrary flag values; Parse must not panic, and what it
// accepts must be self-consistent.
func FuzzParse(f *testing.F) {
	f.Add("pub_net", "172.16.86.0/24", "172.16.86.1", "", "exclude_host=172.16.86.250", "parent=eth0", "team=net", false)
	f.Add("mcv0", "fd11::/64", "", "fd11::/80", "r=fd11::2", "macvlan_mode=vepa", "", true)
	f.Add("dup", "10.2.0.0/24", "", "", "", "parent=eth0 parent=eth1", "", false)
	f.Add("x", "10.0.0.0/8", "10.0.0.0", "10.1.0.0/16", "=", "-o", "a\nb=c", false)
	f.Add("p2p", "172.30.50.0/31", "", "", "", "", "k=", false)
	f.Add("all", "::/0", "", "", "", "", "", true)
	f.Add("mc", "224.0.0.0/24", "", "", "", "", "", false)
	f.Add("ll", "169.254.10.0/24", "169.254.10.1", "", "", "", "", false)
	f.Fuzz(func(t *testing.T, name, subnet, gw, rng, aux, opt, label string, v6 bool) {
		// opt may hold two options, split at its first space: a repeated
		// key must not pass with two values.
		req := api.NetworkCreate{Name: name, Subnets: []string{subnet}, IPv6: v6, Options: strings.SplitN(opt, " ", 2)}
		if gw != "" {
			req.Gateways = []string{gw}
		}
		if rng != "" {
			req.IPRanges = []string{rng}
		}
		if aux != "" {
			req.AuxAddrs = []string{aux}
		}
		if label != "" {
			req.Labels = []string{label}
		}
		c, err := Parse(req)
		if err != nil {
			return
		}
		if o := req.Options; len(o) == 2 {
			k0, v0, _ := strings.Cut(o[0], "=")
			k1, v1, _ := strings.Cut(o[1], "=")
			if k0 == k1 && v0 != v1 && !strings.HasPrefix(k0, "-") && c.Options[k0] != "" && (k0 != "macvlan_mode" || v0 != "" && v1 != "") {
				t.Fatalf("accepted %q twice with other values: %v", k0, o)
			}
		}
		for _, p := range c.Pools {
			checkAcceptedPool(t, p, v6)
		}
		for k, v := range c.Labels {
			if k == "" || len(k) > MaxLabelKey || len(v) > MaxLabelValue || strings.ContainsAny(k, "\x00\n\r\t") {
				t.Fatalf("accepted label %q=%q", k, v)
			}
		}
	})
}

// checkAcceptedPool: what Parse accepts is masked, holds its gateway, is
// IPv6 only with --ipv6, and has room for a container without being wider
// than one segment.
func checkAcceptedPool(t *testing.T, p ipam.PoolConfig, v6 bool) {
	t.Helper()
	bits, width := p.Subnet.Bits(), p.Subnet.Addr().BitLen()
	switch {
	case p.Subnet.Masked() != p.Subnet:
		t.Fatalf("accepted subnet with host bits: %v", p.Subnet)
	case p.Gateway.IsValid() && !p.Subnet.Contains(p.Gateway):
		t.Fatalf("gateway %v outside %v", p.Gateway, p.Subnet)
	case p.Subnet.Addr().Is6() && !v6:
		t.Fatalf("accepted IPv6 subnet without --ipv6")
	case bits == width:
		t.Fatalf("accepted a single-address subnet %v", p.Subnet)
	case width == 32 && bits < 8, width == 128 && bits < 32:
		t.Fatalf("accepted subnet %v, wider than one segment", p.Subnet)
	}
}

// TestHostOnlyInternal: a network without a parent is internal (no
// default route), as Docker's macvlan makes one; one with a parent is as
// asked.
func TestHostOnlyInternal(t *testing.T) {
	for _, tc := range []struct {
		opts     []string
		internal bool
		want     bool
	}{{nil, false, true}, {[]string{"parent=eth0"}, false, false}, {[]string{"parent=eth0"}, true, true}} {
		c, err := Parse(api.NetworkCreate{Name: "n", Subnets: []string{"10.1.0.0/24"}, Options: tc.opts, Internal: tc.internal})
		if err != nil || c.Internal != tc.want {
			t.Errorf("Parse(options %q, internal %t): internal %t, %v; want %t", tc.opts, tc.internal, c.Internal, err, tc.want)
		}
	}
}
