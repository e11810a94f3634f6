package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

func newSpace(t testing.TB, opt Options, pools ...PoolConfig) *Space {
	t.Helper()
	s, err := New(pools, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func alloc(t testing.TB, s *Space, v6 bool, owner string) netip.Prefix {
	t.Helper()
	p, err := s.Allocate(v6, owner)
	if err != nil {
		t.Fatalf("Allocate(v6=%v): %v", v6, err)
	}
	return p
}

// expectAlloc asserts the next allocations, given as prefixes.
func expectAlloc(t testing.TB, s *Space, v6 bool, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := alloc(t, s, v6, "c"); got != pfx(w) {
			t.Fatalf("Allocate = %s, want %s", got, w)
		}
	}
}

func expectExhausted(t testing.TB, s *Space, v6 bool, msg ...string) {
	t.Helper()
	p, err := s.Allocate(v6, "c")
	var ex *ExhaustedError
	if !errors.As(err, &ex) || !errors.Is(err, ErrExhausted) {
		t.Fatalf("Allocate = %v, %v; want *ExhaustedError", p, err)
	}
	wantIn(t, err, msg...)
}

// wantIn asserts that err is non-nil and its message holds every part.
func wantIn(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// drain allocates until exhaustion and returns what was handed out.
func drain(t testing.TB, s *Space, v6 bool) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for {
		p, err := s.Allocate(v6, "c")
		if errors.Is(err, ErrExhausted) {
			return out
		}
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		out = append(out, p.Addr())
	}
}
