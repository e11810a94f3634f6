package ipam

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzPair feeds comma-separated flag values, parsed with netip (values
// that do not parse are dropped, as the CLI would reject them), to PairList
// and Pair, and checks that whatever they accept is a consistent network.
func FuzzPair(f *testing.F) {
	f.Add("192.168.136.0/24,192.168.138.0/24,fd11::/64", "", "192.168.136.0/25,192.168.138.0/25",
		"reserved1=fd11::2,reserved2=192.168.136.2,reserved3=192.168.138.2")
	f.Add("172.16.86.0/24", "172.16.86.1", "", "exclude_host=172.16.86.250")
	f.Add("192.168.32.0/24", "192.168.32.254", "192.168.32.128/25", "")
	f.Add("10.1.100.5/24,10.1.0.0/16", "10.1.100.0,10.1.100.255", "10.1.0.0/8", "=10.1.100.3,a=10.1.100.3")
	f.Add("10.0.0.0/31,10.0.0.2/32,fd00::/127,fd00::2/128", "10.0.0.1,fd00::", "fd00::/128", "x=10.0.0.2")
	f.Add("2001:db8::/48,2001:db8:1::/48", "2001:db8::1,2001:db8::2", "2001:db8::/64,2001:db8::/65", "y=2001:db8::")
	f.Add("224.0.0.0/24,169.254.10.0/24,127.0.0.0/8,0.0.0.0/8", "169.254.10.1", "", "")
	f.Add("ff05::/64,fe80::/64,::/64,::2/127", "", "", "")
	f.Fuzz(func(t *testing.T, subnets, gateways, ranges, aux string) {
		s := parseList(subnets, netip.ParsePrefix)
		g := parseList(gateways, netip.ParseAddr)
		r := parseList(ranges, netip.ParsePrefix)
		var a []AuxAddress
		auxMap := map[string]netip.Addr{}
		for _, kv := range strings.Split(aux, ",") {
			name, v, _ := strings.Cut(kv, "=")
			if ip, err := netip.ParseAddr(v); err == nil {
				a = append(a, AuxAddress{name, ip})
				auxMap[name] = ip
			}
		}
		_, _ = Pair(s, g, r, auxMap)
		pools, err := PairList(s, g, r, a)
		if err != nil {
			return
		}
		checkPaired(t, pools, s, g, r, a)
		// Accepted pools hand out an address of each family they have
		// (checkRangeRoom): a first container never finds none.
		sp, err := New(pools, Options{})
		if err != nil {
			t.Fatalf("New refused what PairList accepted: %v", err)
		}
		for _, v6 := range []bool{false, true} {
			if sp.HasFamily(v6) {
				if _, err := sp.Allocate(v6, "first"); err != nil {
					t.Fatalf("accepted %+v, yet no address to hand out (IPv6 %v): %v", pools, v6, err)
				}
			}
		}
	})
}

func parseList[T any](s string, parse func(string) (T, error)) []T {
	var out []T
	for _, x := range strings.Split(s, ",") {
		if v, err := parse(x); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func checkPaired(t *testing.T, pools []PoolConfig, s []netip.Prefix, g []netip.Addr, r []netip.Prefix, a []AuxAddress) {
	if len(pools) != len(s) {
		t.Fatalf("%d pools for %d subnets", len(pools), len(s))
	}
	gws, rngs, auxN := 0, 0, 0
	for i, p := range pools {
		if p.Subnet != s[i] || p.Subnet != p.Subnet.Masked() {
			t.Fatalf("pool %d subnet %s, given %s", i, p.Subnet, s[i])
		}
		if p.Gateway.IsValid() {
			gws++
			if !p.Subnet.Contains(p.Gateway) || reservedKind(p.Subnet, p.Gateway) != "" {
				t.Fatalf("gateway %s in %s", p.Gateway, p.Subnet)
			}
		}
		if p.IPRange.IsValid() {
			rngs++
			if !contains(p.Subnet, p.IPRange) {
				t.Fatalf("ip-range %s not in %s", p.IPRange, p.Subnet)
			}
		}
		for name, x := range p.Aux {
			auxN++
			if name == "" || !p.Subnet.Contains(x) {
				t.Fatalf("aux %q=%s in %s", name, x, p.Subnet)
			}
		}
		for _, b := range specialBlocks {
			if b.block.Overlaps(p.Subnet) {
				t.Fatalf("subnet %s accepted, in %s", p.Subnet, b.block)
			}
		}
		for _, q := range pools[:i] {
			if q.Subnet.Overlaps(p.Subnet) {
				t.Fatalf("subnets %s and %s overlap", q.Subnet, p.Subnet)
			}
		}
	}
	if gws != len(g) || rngs != len(r) || auxN != len(a) {
		t.Fatalf("paired %d/%d gateways, %d/%d ranges, %d/%d aux", gws, len(g), rngs, len(r), auxN, len(a))
	}
	sp, err := New(pools, Options{})
	if err != nil {
		t.Fatalf("New rejects what Pair accepted: %v", err)
	}
	for _, p := range sp.Pools() {
		if !p.Subnet.Contains(p.Gateway) {
			t.Fatalf("inferred gateway %s outside %s", p.Gateway, p.Subnet)
		}
		for name, x := range p.Aux {
			if x == p.Gateway {
				t.Fatalf("aux %s=%s is the gateway of %s", name, x, p.Subnet)
			}
		}
	}
}
