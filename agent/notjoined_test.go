package agent

import (
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestMatchNetwork: a cluster network not joined here is found as the
// engine finds a network: name, full ID, a unique ID prefix of at least
// 3 characters; not a shorter or an ambiguous prefix, nor another name.
func TestMatchNetwork(t *testing.T) {
	ns := []api.Network{{ID: "abc123", Name: "cnet"}, {ID: "abd456", Name: "other"}}
	for _, tc := range []struct {
		ref, want string // want: the name found, "" none
	}{
		{"cnet", "cnet"}, {"abc123", "cnet"}, {"abc", "cnet"}, {"abd4", "other"},
		{"ab", ""}, {"a", ""}, {"nosuch", ""}, {"", ""},
	} {
		n, ok := matchNetwork(ns, tc.ref)
		if ok != (tc.want != "") || n.Name != tc.want {
			t.Errorf("matchNetwork(%q) = %q %v; want %q", tc.ref, n.Name, ok, tc.want)
		}
	}
	ambiguous := append(ns, api.Network{ID: "abc789", Name: "third"})
	if n, ok := matchNetwork(ambiguous, "abc"); ok {
		t.Errorf("matchNetwork of a prefix of two IDs = %q; want none", n.Name)
	}
}
