package engine

import "testing"

// TestMatchRef: a network is named by its name, its full ID or a unique
// ID prefix of at least 3 characters; not a shorter or an ambiguous
// prefix, nor another name. The engine's look-up and that of cluster
// networks not joined here (UnjoinedNetwork) both match so.
func TestMatchRef(t *testing.T) {
	type net struct{ name, id string }
	match := func(ns []net, ref string) int {
		return matchRef(len(ns), ref, true, func(i int) (string, string) { return ns[i].name, ns[i].id })
	}
	ns := []net{{"cnet", "abc123"}, {"other", "abd456"}}
	for _, tc := range []struct {
		ref, want string // want: the name found, "" none
	}{
		{"cnet", "cnet"}, {"abc123", "cnet"}, {"abc", "cnet"}, {"abd4", "other"},
		{"ab", ""}, {"a", ""}, {"nosuch", ""}, {"", ""},
	} {
		got := ""
		if i := match(ns, tc.ref); i >= 0 {
			got = ns[i].name
		}
		if got != tc.want {
			t.Errorf("matchRef(%q) = %q; want %q", tc.ref, got, tc.want)
		}
	}
	if i := match(append(ns, net{"third", "abc789"}), "abc"); i != ambiguous {
		t.Errorf("matchRef of a prefix of two IDs = %d; want ambiguous", i)
	}
	if i := matchRef(len(ns), "abc", false, func(i int) (string, string) { return ns[i].name, ns[i].id }); i != noMatch {
		t.Errorf("matchRef of a prefix without prefixes = %d; want none", i)
	}
}
