package ipam

import (
	"errors"
	"reflect"
	"testing"
)

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
		err := s.Load(tc.held)
		if !errors.Is(err, tc.sentinel) {
			t.Fatalf("%s: Load = %v, want %v", tc.name, err, tc.sentinel)
		}
		wantIn(t, err, tc.want)
		if after := s.Held(); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s: failed Load changed the state", tc.name)
		}
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
