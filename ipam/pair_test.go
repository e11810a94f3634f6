package ipam

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

type flags struct {
	subnets  []string
	gateways []string
	ranges   []string
	aux      []string // NAME=ADDRESS
}

func (f flags) pair(t *testing.T) ([]PoolConfig, error) {
	t.Helper()
	var s, r []netip.Prefix
	var g []netip.Addr
	var a []AuxAddress
	for _, x := range f.subnets {
		s = append(s, pfx(x))
	}
	for _, x := range f.gateways {
		g = append(g, addr(x))
	}
	for _, x := range f.ranges {
		r = append(r, pfx(x))
	}
	for _, x := range f.aux {
		aa, err := ParseAuxAddress(x)
		if err != nil {
			return nil, err
		}
		a = append(a, aa)
	}
	return PairList(s, g, r, a)
}

func TestPair(t *testing.T) {
	pools, err := flags{
		subnets:  []string{"192.168.136.0/24", "fd11::/64", "192.168.138.0/24"},
		gateways: []string{"fd11::fe", "192.168.138.254"},
		ranges:   []string{"192.168.138.0/25", "192.168.136.0/25"},
		aux:      []string{"r1=fd11::2", "r2=192.168.136.2", "r3=192.168.138.1"},
	}.pair(t)
	if err != nil {
		t.Fatal(err)
	}
	want := []PoolConfig{
		{Subnet: pfx("192.168.136.0/24"), IPRange: pfx("192.168.136.0/25"),
			Aux: map[string]netip.Addr{"r2": addr("192.168.136.2")}},
		{Subnet: pfx("fd11::/64"), Gateway: addr("fd11::fe"), Aux: map[string]netip.Addr{"r1": addr("fd11::2")}},
		{Subnet: pfx("192.168.138.0/24"), Gateway: addr("192.168.138.254"), IPRange: pfx("192.168.138.0/25"),
			Aux: map[string]netip.Addr{"r3": addr("192.168.138.1")}},
	}
	if !reflect.DeepEqual(pools, want) {
		t.Fatalf("Pair =\n%+v\nwant\n%+v", pools, want)
	}
	// Pair refuses an aux-address that is the gateway and a multicast
	// subnet (TestPairErrors), but a network stored before they were
	// refused still loads.
	if _, err := New([]PoolConfig{{Subnet: pfx("224.0.0.0/24")}}, Options{}); err != nil {
		t.Fatalf("New of a stored multicast pool: %v", err)
	}
	if _, err := New([]PoolConfig{{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.1"),
		Aux: map[string]netip.Addr{"gw": addr("10.0.0.1")}}}, Options{}); err != nil {
		t.Fatalf("New of a stored pool whose aux is its gateway: %v", err)
	}
}

func TestPairErrors(t *testing.T) {
	v4 := []string{"10.1.100.0/24"}
	for _, tc := range []struct {
		name string
		f    flags
		want []string
	}{
		{"host bits", flags{subnets: []string{"10.1.100.5/24"}},
			[]string{"subnet 10.1.100.5/24 has host bits set; did you mean 10.1.100.0/24?"}},
		{"range host bits", flags{subnets: v4, ranges: []string{"10.1.100.130/25"}},
			[]string{"ip-range 10.1.100.130/25", "did you mean 10.1.100.128/25?"}},
		{"gateway outside", flags{subnets: v4, gateways: []string{"10.9.9.1"}},
			[]string{"gateway 10.9.9.1 is outside every subnet (10.1.100.0/24)"}},
		{"gateway family", flags{subnets: v4, gateways: []string{"fd00::1"}},
			[]string{"gateway fd00::1 is outside every subnet"}},
		{"two gateways", flags{subnets: v4, gateways: []string{"10.1.100.1", "10.1.100.2"}},
			[]string{"two gateways for subnet 10.1.100.0/24: 10.1.100.1 and 10.1.100.2"}},
		{"gateway network", flags{subnets: v4, gateways: []string{"10.1.100.0"}},
			[]string{"gateway 10.1.100.0 is the network address of 10.1.100.0/24", "10.1.100.1"}},
		{"gateway broadcast", flags{subnets: v4, gateways: []string{"10.1.100.255"}},
			[]string{"gateway 10.1.100.255 is the broadcast address"}},
		{"gateway anycast", flags{subnets: []string{"fd00::/64"}, gateways: []string{"fd00::"}},
			[]string{"gateway fd00:: is the subnet-router anycast address", "fd00::1"}},
		{"range outside", flags{subnets: v4, ranges: []string{"10.2.0.0/25"}},
			[]string{"ip-range 10.2.0.0/25 is outside every subnet (10.1.100.0/24)"}},
		{"range larger", flags{subnets: v4, ranges: []string{"10.1.0.0/16"}},
			[]string{"ip-range 10.1.0.0/16 is larger than its subnet 10.1.100.0/24"}},
		{"two ranges", flags{subnets: v4, ranges: []string{"10.1.100.0/25", "10.1.100.128/25"}},
			[]string{"two ip-ranges for subnet 10.1.100.0/24: 10.1.100.0/25 and 10.1.100.128/25"}},
		{"overlap", flags{subnets: []string{"10.1.0.0/16", "10.1.100.0/24"}},
			[]string{"subnets 10.1.0.0/16 and 10.1.100.0/24 overlap"}},
		{"twice", flags{subnets: []string{"10.1.100.0/24", "10.1.100.0/24"}},
			[]string{"subnet 10.1.100.0/24 is given twice"}},
		{"aux outside", flags{subnets: v4, aux: []string{"x=10.9.9.9"}},
			[]string{"aux-address x=10.9.9.9 is outside every subnet (10.1.100.0/24)"}},
		{"aux empty name", flags{subnets: v4, aux: []string{"=10.1.100.9"}},
			[]string{"aux-address with an empty name"}},
		{"aux duplicate name", flags{subnets: v4, aux: []string{"x=10.1.100.9", "x=10.1.100.10"}},
			[]string{`aux-address name "x" is given twice`}},
		{"aux same address", flags{subnets: v4, aux: []string{"x=10.1.100.9", "y=10.1.100.9"}},
			[]string{"aux-addresses x and y both reserve 10.1.100.9"}},
		{"aux broadcast", flags{subnets: v4, aux: []string{"b=10.1.100.255"}},
			[]string{"aux-address b=10.1.100.255 is the broadcast address of 10.1.100.0/24"}},
		{"aux is the gateway", flags{subnets: v4, gateways: []string{"10.1.100.1"}, aux: []string{"gw=10.1.100.1"}},
			[]string{"aux-address gw=10.1.100.1 is the gateway of 10.1.100.0/24 (its --gateway)", "another address"}},
		{"aux is the inferred gateway", flags{subnets: v4, aux: []string{"h=10.1.100.1"}},
			[]string{"aux-address h=10.1.100.1 is the gateway of 10.1.100.0/24 (inferred: no --gateway was given)"}},
		{"aux is the inferred IPv6 gateway", flags{subnets: []string{"10.1.100.0/24", "fd00::/64"}, aux: []string{"a=10.1.100.9", "h6=fd00::1"}},
			[]string{"aux-address h6=fd00::1 is the gateway of fd00::/64"}},
		{"aux malformed", flags{subnets: v4, aux: []string{"10.1.100.9"}},
			[]string{`aux-address "10.1.100.9" is not NAME=ADDRESS`}},
		{"this network", flags{subnets: []string{"0.0.0.0/8"}},
			[]string{`subnet 0.0.0.0/8 holds "this network" addresses (0.0.0.0/8)`, "e.g. 172.16.86.0/24"}},
		{"this network, a /24 of it", flags{subnets: []string{"0.1.2.0/24"}},
			[]string{`subnet 0.1.2.0/24 holds "this network" addresses (0.0.0.0/8)`}},
		{"loopback", flags{subnets: []string{"127.0.0.0/8"}},
			[]string{"subnet 127.0.0.0/8 holds loopback addresses (127.0.0.0/8)", "e.g. 172.16.86.0/24"}},
		{"loopback /24", flags{subnets: []string{"127.1.0.0/24"}},
			[]string{"subnet 127.1.0.0/24 holds loopback addresses"}},
		{"multicast", flags{subnets: []string{"224.0.0.0/24"}},
			[]string{"subnet 224.0.0.0/24 holds multicast addresses (224.0.0.0/4)", "e.g. 172.16.86.0/24"}},
		{"multicast, second subnet", flags{subnets: []string{"10.1.100.0/24", "239.255.0.0/16"}},
			[]string{"subnet 239.255.0.0/16 holds multicast addresses"}},
		{"IPv6 multicast", flags{subnets: []string{"ff05::/64"}},
			[]string{"subnet ff05::/64 holds multicast addresses (ff00::/8)", "e.g. 2001:db8:abc8::/64"}},
		{"IPv6 unspecified", flags{subnets: []string{"::/64"}},
			[]string{"subnet ::/64 holds the unspecified and loopback addresses (::, ::1)"}},
		{"IPv6 loopback /127", flags{subnets: []string{"::/127"}},
			[]string{"subnet ::/127 holds the unspecified and loopback addresses"}},
		{"IPv6 link-local", flags{subnets: []string{"fe80::/64"}},
			[]string{"subnet fe80::/64 holds IPv6 link-local addresses (fe80::/10)", "fd00::/8"}},
		{"no subnet", flags{gateways: []string{"10.1.100.1"}},
			[]string{"gateway 10.1.100.1 is outside every subnet (no subnet given)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pools, err := tc.f.pair(t)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Pair = %+v, %v; want a config error", pools, err)
			}
			wantIn(t, err, tc.want...)
		})
	}
}

// New validates what Pair validates, for callers that build pools directly.
func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  []PoolConfig
		want []string
	}{
		{"invalid subnet", []PoolConfig{{}}, []string{"subnet is missing"}},
		{"host bits", []PoolConfig{{Subnet: pfx("10.0.0.1/8")}}, []string{"10.0.0.1/8", "did you mean 10.0.0.0/8?"}},
		{"gateway outside", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.1.1")}},
			[]string{"gateway 10.0.1.1 is outside subnet 10.0.0.0/24", "10.0.0.1"}},
		{"gateway zone", []PoolConfig{{Subnet: pfx("fe80::/64"), Gateway: addr("fe80::1%eth0")}},
			[]string{"gateway fe80::1%eth0 has a zone; give it as fe80::1"}},
		{"range outside", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.1.0/25")}},
			[]string{"ip-range 10.0.1.0/25 is outside subnet 10.0.0.0/24"}},
		{"range larger", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.0/23")}},
			[]string{"ip-range 10.0.0.0/23 is larger than its subnet 10.0.0.0/24"}},
		{"range of the network and gateway", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.0/31")}},
			[]string{"ip-range 10.0.0.0/31 has no address to hand out: 10.0.0.0 (the network address), 10.0.0.1 (the gateway)"}},
		{"range of the broadcast", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.255/32")}},
			[]string{"ip-range 10.0.0.255/32 has no address to hand out: 10.0.0.255 (the broadcast address)"}},
		{"range of the gateway", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), Gateway: addr("10.0.0.5"), IPRange: pfx("10.0.0.5/32")}},
			[]string{"10.0.0.5 (the gateway)"}},
		{"range of an aux-address", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.4/32"), Aux: map[string]netip.Addr{"a": addr("10.0.0.4")}}},
			[]string{"10.0.0.4 (aux-address a)", "widen it or move it"}},
		{"v6 range of the anycast and gateway", []PoolConfig{{Subnet: pfx("fd00::/64"), IPRange: pfx("fd00::/127")}},
			[]string{"fd00:: (the subnet-router anycast address)", "fd00::1 (the gateway)"}},
		{"aux outside", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), Aux: map[string]netip.Addr{"a": addr("10.0.1.1")}}},
			[]string{"aux-address a=10.0.1.1 is outside subnet 10.0.0.0/24"}},
		{"aux name across pools", []PoolConfig{
			{Subnet: pfx("10.0.0.0/24"), Aux: map[string]netip.Addr{"a": addr("10.0.0.9")}},
			{Subnet: pfx("fd00::/64"), Aux: map[string]netip.Addr{"a": addr("fd00::9")}}},
			[]string{`aux-address name "a" is used twice`}},
		{"aux empty name", []PoolConfig{{Subnet: pfx("10.0.0.0/24"), Aux: map[string]netip.Addr{"": addr("10.0.0.9")}}},
			[]string{"empty name"}},
		{"overlap", []PoolConfig{{Subnet: pfx("fd00::/48")}, {Subnet: pfx("fd00:0:0:1::/64")}},
			[]string{"subnets fd00::/48 and fd00:0:0:1::/64 overlap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, Options{})
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v; want a config error", err)
			}
			wantIn(t, err, tc.want...)
		})
	}
}

// TestPairSpecialKept: subnets next to the refused blocks, IPv4 link-local
// (169.254/16, which Docker's macvlan networks may use too) and other
// unusual but unicast ones are accepted.
func TestPairSpecialKept(t *testing.T) {
	for _, s := range []string{"169.254.10.0/24", "169.254.0.0/16", "1.0.0.0/8", "126.255.255.0/24", "128.0.0.0/24",
		"223.255.255.0/24", "240.0.0.0/24", "::2/127", "::1:0/112", "64:ff9b::/96", "fec0::/64", "fd00::/64", "fe00::/64", "feff::/64"} {
		if _, err := (flags{subnets: []string{s}}).pair(t); err != nil {
			t.Errorf("Pair(%s) = %v; want it accepted", s, err)
		}
	}
}

func TestPoolsAreCopies(t *testing.T) {
	aux := map[string]netip.Addr{"a": addr("10.0.0.9")}
	s := newSpace(t, Options{}, PoolConfig{Subnet: pfx("10.0.0.0/24"), Aux: aux})
	aux["b"] = addr("10.0.0.10") // the caller's map is not shared
	s.Pools()[0].Aux["c"] = addr("10.0.0.11")
	if got := s.Pools()[0].Aux; len(got) != 1 {
		t.Fatalf("Aux = %v", got)
	}
	if _, err := s.Request(addr("10.0.0.10"), "x"); err != nil {
		t.Fatal(err)
	}
}

// TestRangeRoomKept: an ip-range with one address left to hand out is
// taken, and that address is the one handed out.
func TestRangeRoomKept(t *testing.T) {
	for _, tc := range []struct {
		cfg  PoolConfig
		want string
	}{
		{PoolConfig{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.9/32")}, "10.0.0.9/24"},
		{PoolConfig{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.4/31"), Aux: map[string]netip.Addr{"a": addr("10.0.0.4")}}, "10.0.0.5/24"},
		{PoolConfig{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.0/30")}, "10.0.0.2/24"},
	} {
		s, err := New([]PoolConfig{tc.cfg}, Options{})
		if err != nil {
			t.Errorf("ip-range %s: %v; want it taken", tc.cfg.IPRange, err)
			continue
		}
		if got, err := s.Allocate(false, "c"); err != nil || got.String() != tc.want {
			t.Errorf("ip-range %s: allocated %s, %v; want %s", tc.cfg.IPRange, got, err, tc.want)
		}
	}
}
