package engine

import (
	"errors"
	"testing"
)

// TestHealthRemoving: a network whose rm is under way is "being removed"
// whatever else its status says (a parent gone, a failed datapath), so
// that every front end's admission refuses it.
func TestHealthRemoving(t *testing.T) {
	for _, st := range []health{{status: StatusOK}, {status: StatusParentMissing, parent: "eth9"}, {status: StatusDatapathFailed, err: errors.New("no BPF")}} {
		n := &network{status: st}
		if got := n.health().status; got != st.status {
			t.Errorf("%v not being removed: health %v", st.status, got)
		}
		n.removing = true
		if got := n.health(); got.status != StatusRemoving || got.String() != "being removed" {
			t.Errorf("%v being removed: health %v (%q), want removing", st.status, got.status, got)
		}
	}
}
