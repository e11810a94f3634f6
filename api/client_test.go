package api

import (
	"context"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestEmptyReference: a request naming "", "." or ".." (an unset shell
// variable: `mvlan network rm "$NET"`) is refused by the client, naming
// the value and the request, before it is sent (no agent listens at the
// socket: a request sent would fail to dial); real names pass.
func TestEmptyReference(t *testing.T) {
	c := NewClient("/nonexistent/mvlan.sock")
	for _, ref := range []string{"", ".", ".."} {
		_, err := c.Network(context.Background(), ref)
		if !IsKind(err, KindInvalid) || !strings.Contains(err.Error(), `"`+ref+`" is not a name or ID`) {
			t.Errorf("network %q: %v; want refused naming it", ref, err)
		}
		if err := c.RemoveEndpoint(context.Background(), ref, true); !IsKind(err, KindInvalid) {
			t.Errorf("rm %q: %v; want refused", ref, err)
		}
	}
	for _, ref := range []string{"pub_net", "pub_net/web", "a.b", "..x"} {
		if _, err := c.NetworkBrief(context.Background(), ref); IsKind(err, KindInvalid) {
			t.Errorf("network %q: %v; want it sent (and failing to dial)", ref, err)
		}
	}
}

// TestRouted: CheckEndpoint's gateways go through the query and back: none
// given is "all" (nil), an empty list "none" (not nil); a bad address is
// refused naming it.
func TestRouted(t *testing.T) {
	for _, in := range [][]netip.Addr{{}, {netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("fd00::1")}} {
		got, err := ParseRouted(RoutedQuery(in))
		if err != nil || got == nil || !slices.Equal(got, in) {
			t.Errorf("ParseRouted(RoutedQuery(%v)) = %v, %v", in, got, err)
		}
	}
	if got, err := ParseRouted(url.Values{}); got != nil || err != nil {
		t.Errorf("no routed key: %v, %v; want nil (all)", got, err)
	}
	if _, err := ParseRouted(url.Values{"routed": {"10.1.0.1,gw"}}); err == nil || !strings.Contains(err.Error(), `"gw"`) {
		t.Errorf("routed=10.1.0.1,gw: %v; want refused naming gw", err)
	}
}

// FuzzParseRouted: any routed= value is refused naming the bad part, or
// gives gateways that go through RoutedQuery and back unchanged.
func FuzzParseRouted(f *testing.F) {
	for _, s := range []string{"", "10.0.0.1", "10.0.0.1,fd00::1", ",,", "fe80::1%eth0,1.2.3.4", "x", "10.0.0.1,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseRouted(url.Values{"routed": {s}})
		if err != nil {
			if !strings.Contains(err.Error(), "is not an IP address") {
				t.Fatalf("routed=%q: %v; want the bad part named", s, err)
			}
			return
		}
		if got == nil {
			t.Fatalf("routed=%q: nil; want a list (nil is for no routed= at all)", s)
		}
		back, err := ParseRouted(RoutedQuery(got))
		if err != nil || !slices.Equal(back, got) {
			t.Fatalf("routed=%q: %v through RoutedQuery is %v, %v", s, got, back, err)
		}
	})
}
