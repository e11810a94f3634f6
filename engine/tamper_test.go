package engine

import (
	"slices"
	"testing"

	"github.com/mvlan/mvlan/link"
)

// linksOnly is a Namespaces whose every namespace has links.
type linksOnly struct {
	Namespaces
	links []link.Info
}

func (l linksOnly) Links(string) ([]link.Info, error) { return l.links, nil }

// TestEndpointLinks: the endpoint's own link is found by ifindex, and every
// other macvlan or macvtap on its parent is nested, whatever its alias;
// links on another parent, or of another kind, are not.
func TestEndpointLinks(t *testing.T) {
	own := link.Info{Name: "eth0", Kind: "macvlan", Index: 2, ParentIndex: 7, Alias: "mvlan/n/ep/1"}
	for _, tc := range []struct {
		what   string
		links  []link.Info
		nested []string
	}{
		{"alone", []link.Info{own}, nil},
		{"nested macvlan", []link.Info{own, {Name: "evil", Kind: "macvlan", Index: 3, ParentIndex: 7}}, []string{"evil"}},
		{"nested with mvlan's alias", []link.Info{own, {Name: "evil", Kind: "macvlan", Index: 3, ParentIndex: 7, Alias: "mvlan/x/ep/y"}}, []string{"evil"}},
		{"nested macvtap", []link.Info{own, {Name: "tap", Kind: "macvtap", Index: 4, ParentIndex: 7}}, []string{"tap"}},
		{"another parent", []link.Info{own, {Name: "other", Kind: "macvlan", Index: 3, ParentIndex: 8}}, nil},
		{"a veth", []link.Info{own, {Name: "v", Kind: "veth", Index: 3, ParentIndex: 7}}, nil},
		// The container deleted its eth0 and kept the one it made: the
		// network's parent (7) tells.
		{"own link gone", []link.Info{{Name: "evil", Kind: "macvlan", Index: 3, ParentIndex: 7}}, []string{"evil"}},
		{"own link gone, another parent", []link.Info{{Name: "other", Kind: "macvlan", Index: 3, ParentIndex: 8}}, nil},
	} {
		a := &Engine{ns: linksOnly{links: tc.links}}
		got, nested := a.endpointLinks(endpoint{Netns: "/run/netns/c", Ifindex: own.Index}, 7)
		if wantOwn := slices.ContainsFunc(tc.links, func(l link.Info) bool { return l.Index == own.Index }); (got != nil) != wantOwn {
			t.Errorf("%s: own link %v, want found=%v", tc.what, got, wantOwn)
		}
		var names []string
		for _, l := range nested {
			names = append(names, l.Name)
		}
		if !slices.Equal(names, tc.nested) {
			t.Errorf("%s: nested %v, want %v", tc.what, names, tc.nested)
		}
	}
}
