package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
)

// Docker's TestReleaseAddress / host-local's "allocates the next freed
// address": lowest free comes back first; Release is idempotent.
func TestReleaseThenReallocate(t *testing.T) {
	s := newSpace(t, Options{}, PoolConfig{Subnet: pfx("10.0.0.0/24")})
	expectAlloc(t, s, false, "10.0.0.2/24", "10.0.0.3/24", "10.0.0.4/24", "10.0.0.5/24")
	s.Release(addr("10.0.0.4"))
	s.Release(addr("10.0.0.4")) // idempotent
	s.Release(addr("10.0.0.3"))
	s.Release(addr("10.0.0.200")) // never held
	s.Release(addr("10.0.0.1"))   // the gateway stays reserved
	s.Release(addr("10.9.0.1"))   // outside: no-op
	if _, ok := s.Owner(addr("10.0.0.4")); ok {
		t.Fatal("10.0.0.4 still owned after Release")
	}
	expectAlloc(t, s, false, "10.0.0.3/24", "10.0.0.4/24", "10.0.0.6/24")
	if _, err := s.Request(addr("10.0.0.1"), "c"); !errors.Is(err, ErrReserved) {
		t.Fatalf("gateway released by Release: %v", err)
	}
}

// Docker's TestSerializeAllocation-like scenario in serial mode.
func TestSerial(t *testing.T) {
	// .0 network, .1 gateway, .2-.6, .7 broadcast.
	s := newSpace(t, Options{Serial: true}, PoolConfig{Subnet: pfx("10.0.0.0/29")})
	expectAlloc(t, s, false, "10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29")
	s.Release(addr("10.0.0.2"))
	expectAlloc(t, s, false, "10.0.0.5/29", "10.0.0.6/29") // not .2 again at once
	s.Release(addr("10.0.0.4"))
	expectAlloc(t, s, false, "10.0.0.2/29") // wrapped, lowest from the start
	s.Release(addr("10.0.0.6"))
	s.Release(addr("10.0.0.3"))
	expectAlloc(t, s, false, "10.0.0.3/29", "10.0.0.4/29", "10.0.0.6/29")
	expectExhausted(t, s, false, "10.0.0.0/29")
	s.Release(addr("10.0.0.5"))
	expectAlloc(t, s, false, "10.0.0.5/29")
}

// Requests ahead of the allocation point are skipped; a requested address
// outside the range is allowed and not handed out by Allocate.
func TestRequestOutsideRange(t *testing.T) {
	s := newSpace(t, Options{}, PoolConfig{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.16/28")})
	for _, a := range []string{"10.0.0.5", "10.0.0.17", "10.0.0.18", "10.0.0.20", "10.0.0.200"} {
		if _, err := s.Request(addr(a), "r"); err != nil {
			t.Fatalf("Request(%s): %v", a, err)
		}
	}
	expectAlloc(t, s, false, "10.0.0.16/24", "10.0.0.19/24", "10.0.0.21/24")
	got := drain(t, s, false)
	if len(got) != 10 || got[9] != addr("10.0.0.31") {
		t.Fatalf("drain = %v", got)
	}
	if o, ok := s.Owner(addr("10.0.0.200")); !ok || o != "r" {
		t.Fatalf("Owner(10.0.0.200) = %q, %v", o, ok)
	}
}

// Docker's TestRequestFromMultiplePools / host-local's multiple ranges.
func TestMultipleSubnetsRollOver(t *testing.T) {
	s := newSpace(t, Options{},
		PoolConfig{Subnet: pfx("10.0.0.0/30")},
		PoolConfig{Subnet: pfx("fd00::/126")},
		PoolConfig{Subnet: pfx("10.0.1.0/30")},
		PoolConfig{Subnet: pfx("10.0.2.0/29"), IPRange: pfx("10.0.2.4/31")})
	expectAlloc(t, s, false, "10.0.0.2/30", "10.0.1.2/30", "10.0.2.4/29", "10.0.2.5/29")
	expectExhausted(t, s, false, "no free address in 10.0.0.0/30 nor in 10.0.1.0/30 nor in 10.0.2.0/29 (ip-range 10.0.2.4/31)")
	s.Release(addr("10.0.2.4"))
	s.Release(addr("10.0.0.2"))
	expectAlloc(t, s, false, "10.0.0.2/30", "10.0.2.4/29")
	expectAlloc(t, s, true, "fd00::2/126", "fd00::3/126")
	expectExhausted(t, s, true, "fd00::/126")
}

// Large IPv6 pools: /64 and /48, ranges above 2^64 addresses, addresses
// beyond the first 2^64 (host-local's 64-bit range tests).
func TestIPv6Large(t *testing.T) {
	s := newSpace(t, Options{},
		PoolConfig{Subnet: pfx("2001:db8:1::/64")},
		PoolConfig{Subnet: pfx("2001:db8:2::/48"), IPRange: pfx("2001:db8:2:100::/56")})
	expectAlloc(t, s, true, "2001:db8:1::2/64", "2001:db8:1::3/64")
	for _, a := range []string{
		"2001:db8:1::ffff:ffff:ffff:ffff", "2001:db8:1:0:1::", "2001:db8:1::1:0:0",
		"2001:db8:2::5", "2001:db8:2:ffff:ffff:ffff:ffff:ffff", "2001:db8:2:1ff::1", "2001:db8:2:100::",
	} {
		if _, err := s.Request(addr(a), "r"); err != nil {
			t.Fatalf("Request(%s): %v", a, err)
		}
		if o, ok := s.Owner(addr(a)); !ok || o != "r" {
			t.Fatalf("Owner(%s) = %q, %v", a, o, ok)
		}
	}
	if _, err := s.Request(addr("2001:db8:2::"), "r"); !errors.Is(err, ErrReserved) {
		t.Fatalf("anycast of the /48: %v", err)
	}
	s.Release(addr("2001:db8:2::5"))
	if _, ok := s.Owner(addr("2001:db8:2::5")); ok {
		t.Fatal("released address outside the tracked block still owned")
	}
	// Fill the first pool's low addresses, then the second hands out from
	// its range start (2001:db8:2:100:: is requested, so ::1).
	s2 := newSpace(t, Options{}, PoolConfig{Subnet: pfx("2001:db8:2::/48"), IPRange: pfx("2001:db8:2:100::/56")})
	if _, err := s2.Request(addr("2001:db8:2:100::"), "r"); err != nil {
		t.Fatal(err)
	}
	expectAlloc(t, s2, true, "2001:db8:2:100::1/48", "2001:db8:2:100::2/48")
	u := s2.Usage()[0]
	if u.Used != 3 || u.Free != 1<<80-5 || u.FreeInRange != 1<<64-3 {
		t.Fatalf("Usage = %+v", u)
	}
	// A small range at the very end of a /48.
	s3 := newSpace(t, Options{}, PoolConfig{Subnet: pfx("2001:db8:2::/48"), IPRange: pfx("2001:db8:2:ffff:ffff:ffff:ffff:fffe/127")})
	expectAlloc(t, s3, true, "2001:db8:2:ffff:ffff:ffff:ffff:fffe/48", "2001:db8:2:ffff:ffff:ffff:ffff:ffff/48")
	expectExhausted(t, s3, true, "(ip-range 2001:db8:2:ffff:ffff:ffff:ffff:fffe/127)")
	if h := s.Held(); len(h) != 8 {
		t.Fatalf("Held = %v", h)
	}
}

func TestUsage(t *testing.T) {
	s := newSpace(t, Options{},
		PoolConfig{Subnet: pfx("172.16.86.0/24"), IPRange: pfx("172.16.86.0/25"),
			Aux: map[string]netip.Addr{"x": addr("172.16.86.250"), "y": addr("172.16.86.5")}},
		PoolConfig{Subnet: pfx("fd11::/64")})
	alloc(t, s, false, "a")
	alloc(t, s, true, "a")
	if _, err := s.Request(addr("172.16.86.200"), "b"); err != nil {
		t.Fatal(err)
	}
	u := s.Usage()
	// 256 - network, broadcast, gateway, 2 aux = 251; range .0-.127 has
	// network, gateway, aux y reserved: 125.
	if u[0].Used != 2 || u[0].UsedInRange != 1 || u[0].Free != 249 || u[0].FreeInRange != 124 || u[0].Range != pfx("172.16.86.0/25") {
		t.Fatalf("v4 usage %+v", u[0])
	}
	if u[1].Used != 1 || u[1].UsedInRange != 1 || u[1].Free != 1<<64-3 || u[1].Subnet != pfx("fd11::/64") {
		t.Fatalf("v6 usage %+v", u[1])
	}
}

func TestOwnersAndHeld(t *testing.T) {
	s := newSpace(t, Options{}, PoolConfig{Subnet: pfx("10.0.0.0/16")}, PoolConfig{Subnet: pfx("fd00::/64")})
	var want []Held
	for i := range 300 {
		owner := fmt.Sprintf("c%d", i%7)
		if i%5 == 0 {
			owner = ""
		}
		p := alloc(t, s, i%3 == 0, owner)
		want = append(want, Held{p.Addr(), owner})
	}
	for i := 0; i < len(want); i += 4 {
		s.Release(want[i].Addr)
	}
	for i, h := range want {
		o, ok := s.Owner(h.Addr)
		if ok != (i%4 != 0) || (ok && o != h.Owner) {
			t.Fatalf("Owner(%s) = %q, %v; want %q, %v", h.Addr, o, ok, h.Owner, i%4 != 0)
		}
	}
	if h := s.Held(); len(h) != 300-75 {
		t.Fatalf("Held has %d entries", len(h))
	}
}

func TestConcurrent(t *testing.T) {
	s := newSpace(t, Options{}, PoolConfig{Subnet: pfx("10.0.0.0/20")}, PoolConfig{Subnet: pfx("fd00::/64")})
	var wg sync.WaitGroup
	results := make([][]netip.Addr, 8)
	for g := range results {
		wg.Go(func() {
			for i := range 500 {
				p, err := s.Allocate(g%2 == 0, fmt.Sprint(g))
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					s.Release(p.Addr())
					continue
				}
				results[g] = append(results[g], p.Addr())
			}
		})
	}
	wg.Wait()
	seen := map[netip.Addr]bool{}
	for _, r := range results {
		for _, a := range r {
			if seen[a] {
				t.Fatalf("%s handed out twice", a)
			}
			seen[a] = true
		}
	}
}

func TestLoad(t *testing.T) {
	cfg := []PoolConfig{
		{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.0/28")},
		{Subnet: pfx("2001:db8::/48")},
	}
	s := newSpace(t, Options{}, cfg...)
	alloc(t, s, false, "old") // replaced by Load
	held := []Held{
		{addr("10.0.0.2"), "c1"}, {addr("10.0.0.3"), "c2"}, {addr("10.0.0.5"), ""},
		{addr("10.0.0.100"), "c3"}, {addr("2001:db8::2"), "c1"}, {addr("2001:db8:0:7::1"), "c4"},
	}
	if err := s.Load(held); err != nil {
		t.Fatal(err)
	}
	if got := s.Held(); !reflect.DeepEqual(got, held) {
		t.Fatalf("Held = %v\nwant %v", got, held)
	}
	expectAlloc(t, s, false, "10.0.0.4/24", "10.0.0.6/24")
	expectAlloc(t, s, true, "2001:db8::3/48")
	if o, _ := s.Owner(addr("2001:db8:0:7::1")); o != "c4" {
		t.Fatalf("Owner = %q", o)
	}

	for _, tc := range []struct {
		name     string
		held     []Held
		sentinel error
		want     string
	}{
		{"duplicate", []Held{{addr("10.0.0.9"), "a"}, {addr("10.0.0.9"), "b"}}, ErrTaken,
			`load endpoint "b": address 10.0.0.9 is already in use by endpoint a`},
		{"outside", []Held{{addr("10.0.0.9"), "a"}, {addr("10.1.0.9"), "b"}}, ErrOutside,
			"address 10.1.0.9 is outside every subnet"},
		{"reserved", []Held{{addr("10.0.0.1"), "a"}}, ErrReserved, "address 10.0.0.1 is reserved in 10.0.0.0/24 (gateway)"},
		{"anycast", []Held{{addr("2001:db8::"), "a"}}, ErrReserved, "subnet-router anycast"},
	} {
		before := s.Held()
		if err := s.TryLoad(tc.held); !errors.Is(err, tc.sentinel) {
			t.Fatalf("%s: TryLoad = %v, want %v", tc.name, err, tc.sentinel)
		}
		err := s.Load(tc.held)
		if !errors.Is(err, tc.sentinel) {
			t.Fatalf("%s: Load = %v, want %v", tc.name, err, tc.sentinel)
		}
		wantIn(t, err, tc.want)
		if after := s.Held(); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: failed Load changed the state", tc.name)
		}
	}
	// A set Load would take: TryLoad says so and changes nothing.
	before := s.Held()
	if err := s.TryLoad([]Held{{addr("10.0.0.9"), "a"}}); err != nil {
		t.Fatalf("TryLoad of a free address: %v", err)
	}
	if after := s.Held(); !reflect.DeepEqual(before, after) {
		t.Fatalf("TryLoad changed the state: %v, was %v", after, before)
	}
}

func TestLoadSerial(t *testing.T) {
	s := newSpace(t, Options{Serial: true}, PoolConfig{Subnet: pfx("10.0.0.0/29")})
	if err := s.Load([]Held{{addr("10.0.0.3"), "a"}, {addr("10.0.0.5"), "b"}}); err != nil {
		t.Fatal(err)
	}
	expectAlloc(t, s, false, "10.0.0.2/29", "10.0.0.4/29", "10.0.0.6/29")
	s.Release(addr("10.0.0.3"))
	expectAlloc(t, s, false, "10.0.0.3/29") // wraps: nothing free after the cursor
	expectExhausted(t, s, false, "10.0.0.0/29")
}

// TestResumeAfter: a serial space loaded after a restart and resumed
// after what was handed out before (held or released) goes on after the
// highest of it in each range, as it would have without the restart; the
// free addresses below come in the next lap.
func TestResumeAfter(t *testing.T) {
	v4 := PoolConfig{Subnet: pfx("10.0.0.0/29")} // .2-.6
	for _, tc := range []struct {
		name   string
		serial bool
		pools  []PoolConfig
		held   []string // loaded, owner "h"
		after  []string
		free   []string // released once resumed, before allocating
		want   []string // handed out until none is left
	}{
		{"c1 .2 released, c2 .3 held", true, []PoolConfig{v4}, []string{"10.0.0.3"}, []string{"10.0.0.2", "10.0.0.3"}, nil,
			[]string{"10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2"}},
		{"released above the held", true, []PoolConfig{v4}, []string{"10.0.0.3"}, []string{"10.0.0.5", "10.0.0.3"}, nil,
			[]string{"10.0.0.6", "10.0.0.2", "10.0.0.4", "10.0.0.5"}},
		{"the range's last: wraps", true, []PoolConfig{v4}, []string{"10.0.0.4"}, []string{"10.0.0.6"}, nil,
			[]string{"10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"}},
		{"nothing handed out", true, []PoolConfig{v4}, nil, nil, nil,
			[]string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}},
		{"one released in the gap waits for the lap", true, []PoolConfig{v4}, []string{"10.0.0.3"}, []string{"10.0.0.5"},
			[]string{"10.0.0.3"}, []string{"10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}},
		{"one released below the gap too", true, []PoolConfig{v4}, []string{"10.0.0.2", "10.0.0.3"}, []string{"10.0.0.4"},
			[]string{"10.0.0.2"}, []string{"10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.4"}},
		{"outside the ip-range: ignored", true, []PoolConfig{{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.8/30")}},
			[]string{"10.0.0.200"}, []string{"10.0.0.200", "10.0.0.2"}, nil,
			[]string{"10.0.0.8", "10.0.0.9", "10.0.0.10", "10.0.0.11"}},
		{"each pool after its own", true, []PoolConfig{v4, {Subnet: pfx("10.0.1.0/29")}}, nil, []string{"10.0.0.5", "10.0.1.3"}, nil,
			[]string{"10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.1.4", "10.0.1.5", "10.0.1.6", "10.0.1.2", "10.0.1.3"}},
		{"not serial: lowest first", false, []PoolConfig{v4}, []string{"10.0.0.3"}, []string{"10.0.0.5"}, nil,
			[]string{"10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpace(t, Options{Serial: tc.serial}, tc.pools...)
			var held []Held
			for _, a := range tc.held {
				held = append(held, Held{addr(a), "h"})
			}
			if err := s.Load(held); err != nil {
				t.Fatal(err)
			}
			var after []netip.Addr
			for _, a := range tc.after {
				after = append(after, addr(a))
			}
			s.ResumeAfter(after...)
			for _, a := range tc.free {
				s.Release(addr(a))
			}
			var got []string
			for _, a := range drain(t, s, false) {
				got = append(got, a.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("handed out %v, want %v", got, tc.want)
			}
		})
	}
}
