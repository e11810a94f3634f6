package link_test

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestMacvlansAt: in a container's namespace with an endpoint link (a
// macvlan of the sandbox's eth0), a nested macvlan, a macvtap where the
// kernel has them, and 50 veth pairs, the tamper check's look returns the
// macvlans and macvtaps, each once, and the link at the index asked
// for whatever its kind, and none of the veths else; with the lower
// elsewhere and the parent's index as the kernel shows them.
func TestMacvlansAt(t *testing.T) {
	sb := nstest.NewSandbox(t)
	c := sb.Netns(t, "c")
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "ep", "netns", filepath.Base(c), "type", "macvlan", "mode", "bridge")
	sb.Run(t, c, "ip", "link", "add", "link", "ep", "name", "nested", "type", "macvlan", "mode", "bridge")
	want := []string{"ep", "nested"}
	if _, err := nstest.RunErr(c, "ip", "link", "add", "link", "ep", "name", "tap", "type", "macvtap"); err == nil {
		want = append(want, "tap")
	}
	var batch strings.Builder
	for i := range 50 {
		fmt.Fprintf(&batch, "link add v%d type veth peer name p%d\n", i, i)
	}
	sb.Run(t, c, "sh", "-c", "printf '"+batch.String()+"' | ip -batch -")
	if all, err := link.EndpointLinks(c); err != nil || len(all) < 100+len(want) {
		t.Fatalf("links in %s: %d (%v); want the 100 veths and the macvlans", c, len(all), err)
	}
	parent := ifindex(t, sb, sb.Path, "eth0")
	for _, tc := range []struct {
		at   string
		want []string
	}{
		{"ep", want},
		{"v7", append(slices.Clone(want), "v7")},
		{"", want}, // an index no link has
	} {
		at := 9999
		if tc.at != "" {
			at = ifindex(t, sb, c, tc.at)
		}
		ls, err := link.MacvlansAt(c, at, sb.Path)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range ls {
			names = append(names, l.Name)
			if l.IsMacvlan() && (!l.LowerElsewhere || l.ParentIndex != parent) {
				t.Errorf("at %s: %+v; want its lower elsewhere, at the parent's index %d", tc.at, l, parent)
			}
		}
		slices.Sort(names)
		slices.Sort(tc.want)
		if !slices.Equal(names, tc.want) {
			t.Errorf("MacvlansAt(%s) = %v; want %v", tc.at, names, tc.want)
		}
	}
	if _, err := link.MacvlansAt("/run/netns/mvt-does-not-exist", 2, ""); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("MacvlansAt(missing) error = %v; want ErrNotFound", err)
	}
}

// TestMacvlansAtLowerOnHost: of a container's macvlans, those whose lower
// link is on the host (its endpoint's, one nested on it) are LowerOnHost;
// one on a link of a namespace the container made is not, also when that
// link has the host parent's index.
func TestMacvlansAtLowerOnHost(t *testing.T) {
	sb := nstest.NewSandbox(t)
	c, x := sb.Netns(t, "c"), sb.Netns(t, "x")
	parent := ifindex(t, sb, sb.Path, "eth0")
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "ep", "netns", filepath.Base(c), "type", "macvlan", "mode", "bridge")
	sb.Run(t, c, "ip", "link", "add", "link", "ep", "name", "nested", "type", "macvlan", "mode", "bridge")
	sb.Run(t, x, "ip", "link", "add", "v0", "index", strconv.Itoa(parent), "type", "veth", "peer", "name", "v1", "index", "50")
	sb.Run(t, x, "ip", "link", "add", "link", "v0", "name", "mine", "netns", filepath.Base(c), "type", "macvlan", "mode", "bridge")
	var ls []link.Info
	err := nstest.In(sb.Path, func() (err error) { // the agent's view, from the host: hostNetns ""
		ls, err = link.MacvlansAt(c, 0, "")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	named, err := link.MacvlansAt(c, 0, sb.Path) // from elsewhere, naming the host
	if err != nil || len(named) != len(ls) {
		t.Fatalf("MacvlansAt naming the host: %v, %v; want %d links", named, err, len(ls))
	}
	for i := range ls {
		if named[i].Name != ls[i].Name || named[i].LowerOnHost != ls[i].LowerOnHost {
			t.Errorf("naming the host: %+v; from the host: %+v", named[i], ls[i])
		}
	}
	got := map[string]bool{}
	for _, l := range ls {
		if l.ParentIndex != parent || !l.LowerElsewhere {
			t.Errorf("%+v; want its lower elsewhere, at index %d", l, parent)
		}
		got[l.Name] = l.LowerOnHost
	}
	if want := map[string]bool{"ep": true, "nested": true, "mine": false}; !maps.Equal(got, want) {
		t.Errorf("LowerOnHost by link: %v; want %v", got, want)
	}
}

// ifindex is the index of link name in namespace ns.
func ifindex(t *testing.T, sb *nstest.Sandbox, ns, name string) int {
	t.Helper()
	var i int
	out := sb.Run(t, ns, "ip", "-o", "link", "show", "dev", name)
	if _, err := fmt.Sscanf(out, "%d:", &i); err != nil || i == 0 {
		t.Fatalf("ifindex of %s in %s: %q", name, ns, out)
	}
	return i
}

// TestMacvlanConf: the tamper check's look reports a macvlan's mode,
// flags and source list, from the link dump and from the look-up by index
// alike: an endpoint link a container switched to source mode, nodst,
// with two MACs listed, and a nested vepa link. SetMacvlanMode puts
// the endpoint link back in bridge mode with no flags, its list emptied;
// a mode that is no macvlan's is refused.
func TestMacvlanConf(t *testing.T) {
	sb := nstest.NewSandbox(t)
	c := sb.Netns(t, "c")
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "ep", "netns", filepath.Base(c), "type", "macvlan", "mode", "bridge")
	sb.Run(t, c, "ip", "link", "set", "ep", "type", "macvlan", "mode", "source", "flag", "nodst", "macaddr", "set", "02:00:5e:00:53:01", "02:00:5e:00:53:02")
	sb.Run(t, c, "ip", "link", "add", "link", "ep", "name", "pt", "type", "macvlan", "mode", "vepa")
	ep := ifindex(t, sb, c, "ep")
	confs := func(at int) map[string]link.MacvlanConf {
		t.Helper()
		ls, err := link.MacvlansAt(c, at, sb.Path)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]link.MacvlanConf{}
		for _, l := range ls {
			if l.Macvlan == nil {
				t.Fatalf("%s: no macvlan settings read", l.Name)
			}
			out[l.Name] = *l.Macvlan
		}
		return out
	}
	want := map[string]link.MacvlanConf{"ep": {Mode: "source", Flags: link.MacvlanNoDst, Sources: 2}, "pt": {Mode: "vepa"}}
	for _, at := range []int{0, ep} {
		if got := confs(at); !maps.Equal(got, want) {
			t.Errorf("at %d: %v; want %v", at, got, want)
		}
	}
	if err := link.SetMacvlanMode(c, ep, "macvlan", "bridge"); err != nil {
		t.Fatal(err)
	}
	want["ep"] = link.MacvlanConf{Mode: "bridge"}
	if got := confs(ep); !maps.Equal(got, want) {
		t.Errorf("after SetMacvlanMode: %v; want %v", got, want)
	}
	if err := link.SetMacvlanMode(c, ep, "macvlan", "fast"); err == nil {
		t.Error("SetMacvlanMode took mode fast")
	}
}
