package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
)

// TestProgramPins: a second Load takes the first one's programs (same
// kernel IDs, nothing verified again) and leaves ep_progs as it is; a
// shared map replaced in between (its pin gone) makes every program that
// used it load again, against the new map; pins of another build go.
func TestProgramPins(t *testing.T) {
	pinDir := privateBPFFS(t)
	first := loadAt(t, pinDir)
	ids := func(d *Datapath) map[string]ebpf.ProgramID {
		return map[string]ebpf.ProgramID{"parent_ingress": programID(d.parentIngress), "parent_egress": programID(d.parentEgress),
			"ep_ingress": programID(d.epIngress), "ep_egress": programID(d.epEgress)}
	}
	before := ids(first)
	stale := filepath.Join(pinDir, "progs", "ep_ingress-0123456789abcdef")
	if err := first.epEgress.Pin(stale); err != nil {
		t.Fatal(err)
	}
	second := loadAt(t, pinDir)
	for name, id := range ids(second) {
		if id == 0 || id != before[name] {
			t.Errorf("%s: second Load has program %d, want the pinned %d", name, id, before[name])
		}
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("another build's pin %s not pruned (stat: %v)", stale, err)
	}
	if err := os.Remove(filepath.Join(pinDir, "ep_table")); err != nil {
		t.Fatal(err)
	}
	third := loadAt(t, pinDir)
	tableInfo, err := third.byName["ep_table"].Info()
	if err != nil {
		t.Fatal(err)
	}
	table, _ := tableInfo.ID()
	for name, p := range map[string]*ebpf.Program{"ep_ingress": third.epIngress, "ep_egress": third.epEgress} {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		maps, _ := info.MapIDs()
		uses := false
		for _, id := range maps {
			uses = uses || id == table
		}
		id, _ := info.ID()
		if !uses || id == before[name] {
			t.Errorf("%s after ep_table was replaced: program %d (before %d) uses maps %v, want the new ep_table %d", name, id, before[name], maps, table)
		}
		var slot uint32
		want := map[string]uint32{"ep_ingress": slotIngress, "ep_egress": slotEgress}[name]
		if err := third.maps.EpProgs.Lookup(want, &slot); err != nil || ebpf.ProgramID(slot) != id {
			t.Errorf("ep_progs slot %d holds %d (%v), want %s %d", want, slot, err, name, id)
		}
	}
}
