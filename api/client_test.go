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
