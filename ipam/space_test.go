package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The examples of the reference document (macvlan driver doc).
func TestReferenceIPRange(t *testing.T) {
	// --subnet=192.168.32.0/24 --ip-range=192.168.32.128/25 --gateway=192.168.32.254
	s := newSpace(t, Options{}, PoolConfig{
		Subnet: pfx("192.168.32.0/24"), IPRange: pfx("192.168.32.128/25"), Gateway: addr("192.168.32.254"),
	})
	expectAlloc(t, s, false, "192.168.32.128/24", "192.168.32.129/24", "192.168.32.130/24")
	got := drain(t, s, false)
	// .131 ... .253, then .254 is the gateway and .255 the broadcast address.
	if len(got) != 123 || got[0] != addr("192.168.32.131") || got[len(got)-1] != addr("192.168.32.253") {
		t.Fatalf("drain = %d addresses %v..%v", len(got), got[0], got[len(got)-1])
	}
	expectExhausted(t, s, false, "no free address in 192.168.32.0/24 (ip-range 192.168.32.128/25)")
}

// TestExhaustedRemedy: a full network's error says what would make room:
// removing a container, and, where an ip-range leaves addresses of the
// subnet out, asking for one of those with --ip (--ip6) or a wider range;
// else a wider subnet.
func TestExhaustedRemedy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       PoolConfig
		want, not []string
	}{
		{"subnet", PoolConfig{Subnet: pfx("10.0.0.0/30")},
			[]string{"no free address in 10.0.0.0/30; remove a container from the network, or recreate the network with a wider --subnet"},
			[]string{"--ip", "ip-range"}},
		{"ip-range", PoolConfig{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.4/31")},
			[]string{"no free address in 10.0.0.0/24 (ip-range 10.0.0.4/31); remove a container from the network, " +
				"give --ip with a free address of the subnet outside the ip-range (any is allowed), or recreate the network with a wider --ip-range"},
			[]string{"--ip6", "--subnet"}},
		{"IPv6 ip-range", PoolConfig{Subnet: pfx("fd00::/64"), IPRange: pfx("fd00::4/127")},
			[]string{"give --ip6 with a free address"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpace(t, Options{}, tc.cfg)
			v6 := tc.cfg.Subnet.Addr().Is6()
			drain(t, s, v6)
			_, err := s.Allocate(v6, "c")
			wantIn(t, err, tc.want...)
			for _, no := range tc.not {
				if strings.Contains(err.Error(), no) {
					t.Errorf("error %q mentions %q", err, no)
				}
			}
		})
	}
}

func TestReferenceAuxExcludeHost(t *testing.T) {
	// --subnet=172.16.86.0/24 --gateway=172.16.86.1 --aux-address="exclude_host=172.16.86.250"
	pools, err := Pair([]netip.Prefix{pfx("172.16.86.0/24")}, []netip.Addr{addr("172.16.86.1")}, nil,
		map[string]netip.Addr{"exclude_host": addr("172.16.86.250")})
	if err != nil {
		t.Fatal(err)
	}
	s := newSpace(t, Options{}, pools...)
	got := drain(t, s, false)
	if len(got) != 252 || slices.Contains(got, addr("172.16.86.250")) || slices.Contains(got, addr("172.16.86.1")) {
		t.Fatalf("handed out %d addresses, first %v; exclude_host or gateway among them", len(got), got[0])
	}
	_, err = s.Request(addr("172.16.86.250"), "c1")
	var re *ReservedError
	if !errors.As(err, &re) || re.Reason != "aux-address exclude_host" {
		t.Fatalf("Request(exclude_host) = %v", err)
	}
	wantIn(t, err, "172.16.86.250", "aux-address exclude_host")
}

func TestReferenceMcv0(t *testing.T) {
	pools, err := Pair(
		[]netip.Prefix{pfx("192.168.136.0/24"), pfx("192.168.138.0/24"), pfx("fd11::/64")},
		nil,
		[]netip.Prefix{pfx("192.168.136.0/25"), pfx("192.168.138.0/25")},
		map[string]netip.Addr{
			"reserved1": addr("fd11::2"), "reserved2": addr("192.168.136.2"), "reserved3": addr("192.168.138.2"),
		})
	if err != nil {
		t.Fatal(err)
	}
	s := newSpace(t, Options{}, pools...)
	// Gateways inferred .1 and ::1; .2 and ::2 are aux: the first container
	// gets 192.168.136.3 and fd11::3, as in the reference output.
	expectAlloc(t, s, false, "192.168.136.3/24")
	expectAlloc(t, s, true, "fd11::3/64")
	gws := []netip.Addr{}
	for _, p := range s.Pools() {
		gws = append(gws, p.Gateway)
	}
	if want := []netip.Addr{addr("192.168.136.1"), addr("192.168.138.1"), addr("fd11::1")}; !slices.Equal(gws, want) {
		t.Fatalf("gateways %v, want %v", gws, want)
	}
	// The first range has .3 ... .127 (125 addresses); then the second subnet.
	if got := drain(t, s, false); len(got) != 124+125 || got[124] != addr("192.168.138.3") {
		t.Fatalf("drain: %d addresses, [124]=%v", len(got), got[124])
	}
	expectExhausted(t, s, false,
		"192.168.136.0/24 (ip-range 192.168.136.0/25)", "192.168.138.0/24 (ip-range 192.168.138.0/25)")
}

func TestInferGateway(t *testing.T) {
	for _, tc := range []struct{ subnet, gw string }{
		{"10.1.100.0/24", "10.1.100.1"},
		{"10.1.100.128/25", "10.1.100.129"},
		{"10.0.0.0/8", "10.0.0.1"},
		{"10.0.0.4/30", "10.0.0.5"},
		{"10.0.0.2/31", "10.0.0.2"},
		{"10.0.0.7/32", "10.0.0.7"},
		{"2001:db8:abc8::/64", "2001:db8:abc8::1"},
		{"2001:db8::/48", "2001:db8::1"},
		{"2001:db8::4/127", "2001:db8::4"},
		{"2001:db8::9/128", "2001:db8::9"},
	} {
		if got := InferGateway(pfx(tc.subnet)); got != addr(tc.gw) {
			t.Errorf("InferGateway(%s) = %s, want %s", tc.subnet, got, tc.gw)
		}
		if hostBits(pfx(tc.subnet)) == 0 {
			continue // New refuses it (TestSubnetSize)
		}
		s := newSpace(t, Options{}, PoolConfig{Subnet: pfx(tc.subnet)})
		if got := s.Pools()[0].Gateway; got != addr(tc.gw) {
			t.Errorf("Pools()[0].Gateway for %s = %s, want %s", tc.subnet, got, tc.gw)
		}
	}
}

// TestSubnetSize: a subnet with no address for a container, or wider than
// one layer-2 segment, is refused with the reason; the limits themselves
// and point-to-point /31 and /127 are accepted.
func TestSubnetSize(t *testing.T) {
	for subnet, want := range map[string]string{
		"172.30.50.0/32":  "subnet 172.30.50.0/32 has a single address",
		"fd00::1/128":     "subnet fd00::1/128 has a single address",
		"::/0":            "subnet ::/0 is wider than /32",
		"0.0.0.0/0":       "subnet 0.0.0.0/0 is wider than /8",
		"10.0.0.0/7":      "subnet 10.0.0.0/7 is wider than /8",
		"2001:db8::/31":   "subnet 2001:db8::/31 is wider than /32",
		"10.0.0.0/8":      "",
		"2001:db8::/32":   "",
		"172.30.50.0/31":  "",
		"2001:db8::2/127": "",
	} {
		_, err := New([]PoolConfig{{Subnet: pfx(subnet)}}, Options{})
		var ce *ConfigError
		switch {
		case want == "" && err != nil:
			t.Errorf("New(%s): %v; want it accepted", subnet, err)
		case want != "" && (!errors.As(err, &ce) || !strings.HasPrefix(err.Error(), want)):
			t.Errorf("New(%s): %v; want a ConfigError starting %q", subnet, err, want)
		}
		if _, err2 := Pair([]netip.Prefix{pfx(subnet)}, nil, nil, nil); (err2 == nil) != (err == nil) {
			t.Errorf("Pair(%s): %v, but New: %v", subnet, err2, err)
		}
	}
}

// Every address of small pools: exactly the non-reserved ones, lowest first.
func TestNeverHandedOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  PoolConfig
		want []string // handed out, in order
	}{
		{"v4 /29", PoolConfig{Subnet: pfx("10.0.0.8/29")},
			[]string{"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14"}},
		{"v4 /29 gateway last, aux", PoolConfig{Subnet: pfx("10.0.0.8/29"), Gateway: addr("10.0.0.14"),
			Aux: map[string]netip.Addr{"a": addr("10.0.0.10")}},
			[]string{"10.0.0.9", "10.0.0.11", "10.0.0.12", "10.0.0.13"}},
		{"v4 aux equal gateway", PoolConfig{Subnet: pfx("10.0.0.8/30"),
			Aux: map[string]netip.Addr{"gw": addr("10.0.0.9")}},
			[]string{"10.0.0.10"}},
		{"v4 /31", PoolConfig{Subnet: pfx("10.0.0.8/31")}, []string{"10.0.0.9"}},
		{"v4 /31 gateway .9", PoolConfig{Subnet: pfx("10.0.0.8/31"), Gateway: addr("10.0.0.9")}, []string{"10.0.0.8"}},
		{"v6 /125", PoolConfig{Subnet: pfx("fd00::/125"), Aux: map[string]netip.Addr{"r": addr("fd00::5")}},
			[]string{"fd00::2", "fd00::3", "fd00::4", "fd00::6", "fd00::7"}},
		{"v6 /127", PoolConfig{Subnet: pfx("fd00::/127")}, []string{"fd00::1"}},
		{"v4 range at subnet start", PoolConfig{Subnet: pfx("10.0.0.0/28"), IPRange: pfx("10.0.0.0/30")},
			[]string{"10.0.0.2", "10.0.0.3"}},
		{"v4 range at subnet end", PoolConfig{Subnet: pfx("10.0.0.0/28"), IPRange: pfx("10.0.0.12/30")},
			[]string{"10.0.0.12", "10.0.0.13", "10.0.0.14"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpace(t, Options{}, tc.cfg)
			v6 := tc.cfg.Subnet.Addr().Is6()
			var got []string
			for _, a := range drain(t, s, v6) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("handed out %v, want %v", got, tc.want)
			}
			expectExhausted(t, s, v6, tc.cfg.Subnet.String())
		})
	}
}

func TestRequestErrors(t *testing.T) {
	s := newSpace(t, Options{},
		PoolConfig{Subnet: pfx("172.16.86.0/24"), IPRange: pfx("172.16.86.128/25"),
			Aux: map[string]netip.Addr{"exclude_host": addr("172.16.86.250")}},
		PoolConfig{Subnet: pfx("fd11::/64")})
	if _, err := s.Request(addr("172.16.86.10"), "c1"); err != nil {
		t.Fatalf("Request outside the ip-range but inside the subnet: %v", err)
	}
	for _, tc := range []struct {
		addr     string
		sentinel error
		parts    []string
	}{
		{"172.16.86.10", ErrTaken, []string{"address 172.16.86.10 is already in use by endpoint c1"}},
		{"172.16.86.1", ErrReserved, []string{"172.16.86.1", "(gateway)"}},
		{"172.16.86.250", ErrReserved, []string{"172.16.86.250", "aux-address exclude_host"}},
		{"172.16.86.0", ErrReserved, []string{"172.16.86.0", "the network address"}},
		{"172.16.86.255", ErrReserved, []string{"172.16.86.255", "the broadcast address"}},
		{"fd11::", ErrReserved, []string{"fd11::", "the subnet-router anycast address"}},
		{"fd11::1", ErrReserved, []string{"fd11::1", "gateway"}},
		{"10.9.9.9", ErrOutside, []string{"address 10.9.9.9 is outside every subnet of this network (172.16.86.0/24, fd11::/64)"}},
		{"fd12::1", ErrOutside, []string{"fd12::1"}},
	} {
		_, err := s.Request(addr(tc.addr), "c2")
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("Request(%s) = %v, want %v", tc.addr, err, tc.sentinel)
			continue
		}
		wantIn(t, err, tc.parts...)
	}
	var te *TakenError
	if _, err := s.Request(addr("172.16.86.10"), "c2"); !errors.As(err, &te) || te.Owner != "c1" {
		t.Fatalf("TakenError = %+v", te)
	}
	// The last address of an IPv6 subnet is an ordinary address.
	if _, err := s.Request(addr("fd11::ffff:ffff:ffff:ffff"), "c3"); err != nil {
		t.Fatal(err)
	}
}

// TestTakenOwner: a TakenError names its holder as what it is: an
// endpoint's name as the endpoint, any other holder by its own phrase;
// HintTaken adds what to do instead, with the flag of the address's
// family, and leaves other errors alone.
func TestTakenOwner(t *testing.T) {
	for _, tc := range []struct{ addr, owner, want string }{
		{"10.0.0.5", "c1", "address 10.0.0.5 is already in use by endpoint c1; pick another address or leave --ip out"},
		{"10.0.0.5", "the host shim", "address 10.0.0.5 is already in use by the host shim; pick another address or leave --ip out"},
		{"10.0.0.5", "a quarantined record of endpoint c1", "in use by a quarantined record of endpoint c1;"},
		{"10.0.0.5", "Docker's reservation", "in use by Docker's reservation;"},
		{"10.0.0.5", "", "address 10.0.0.5 is already in use; pick another address or leave --ip out"},
		{"fd00::5", "c1", "address fd00::5 is already in use by endpoint c1; pick another address or leave --ip6 out"},
	} {
		s := newSpace(t, Options{}, PoolConfig{Subnet: pfx("10.0.0.0/24")}, PoolConfig{Subnet: pfx("fd00::/64")})
		if _, err := s.Request(addr(tc.addr), tc.owner); err != nil {
			t.Fatal(err)
		}
		_, err := s.Request(addr(tc.addr), "c2")
		if got := HintTaken(err); !errors.Is(got, ErrTaken) || !strings.Contains(got.Error(), tc.want) {
			t.Errorf("owner %q: %v; want %q", tc.owner, got, tc.want)
		}
	}
	if err := HintTaken(ErrOutside); err != ErrOutside {
		t.Errorf("HintTaken(ErrOutside) = %v", err)
	}
}

func TestNoFamily(t *testing.T) {
	s := newSpace(t, Options{}, PoolConfig{Subnet: pfx("10.0.0.0/24")})
	_, err := s.Allocate(true, "c1")
	if !errors.Is(err, ErrNoFamily) {
		t.Fatalf("Allocate(v6) on a v4 network = %v", err)
	}
	wantIn(t, err, "IPv6")
	if s.HasFamily(true) || !s.HasFamily(false) {
		t.Fatal("HasFamily wrong")
	}
	empty := newSpace(t, Options{})
	if _, err := empty.Allocate(false, "c1"); !errors.Is(err, ErrNoFamily) {
		t.Fatalf("Allocate on an empty space = %v", err)
	}
}
