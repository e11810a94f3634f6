package api

import (
	"context"
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
