package link

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestMacvlansAtUnfiltered: a kind the kernel does not know (as macvtap
// while its module is not loaded) is not filtered: its dump answers with
// every link, whose macvlans are then the answer, each once, without a
// second dump.
func TestMacvlansAtUnfiltered(t *testing.T) {
	sb := nstest.NewSandbox(t)
	c := sb.Netns(t, "u")
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "ep", "netns", filepath.Base(c), "type", "macvlan", "mode", "bridge")
	sb.Run(t, c, "ip", "link", "add", "link", "ep", "name", "nested", "type", "macvlan", "mode", "bridge")
	sb.Run(t, c, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "p0")
	for _, kinds := range [][]string{{"mvlan-nosuchkind", "macvlan"}, {"macvlan", "mvlan-nosuchkind"}} {
		ls, err := macvlansAt(c, 9999, sb.Path, kinds)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range ls {
			names = append(names, l.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"ep", "nested"}) {
			t.Errorf("kinds %v: %v; want [ep nested]", kinds, names)
		}
	}
}
