package engine

import (
	"net"
	"testing"
)

// TestMACClaims: a MAC claimed by one network's attach is refused to
// another network's until its holder releases it. An attach of the same
// network takes the claim over (the holder is being undone), and the
// old holder's release then leaves it.
func TestMACClaims(t *testing.T) {
	var c macClaims
	mac := net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 1}
	steps := []struct {
		op, network, owner string
		wantErr            bool
	}{
		{"claim", "a", "e1", false},
		{"claim", "b", "e2", true},
		{"release", "", "e2", false}, // not its claim
		{"claim", "b", "e2", true},
		{"claim", "a", "e3", false}, // e1 being undone, e3 admitted
		{"release", "", "e1", false},
		{"claim", "b", "e2", true}, // e3's claim stays
		{"release", "", "e3", false},
		{"claim", "b", "e2", false},
		{"claim", "a", "e1", true},
	}
	for i, s := range steps {
		var err error
		if s.op == "claim" {
			err = c.claim(mac, s.network, s.owner)
		} else {
			c.release(mac, s.owner)
		}
		if (err != nil) != s.wantErr {
			t.Fatalf("step %d, %s by %s of %s: err %v, want error %v", i, s.op, s.owner, s.network, err, s.wantErr)
		}
		if err != nil && KindOf(err) != KindConflict {
			t.Fatalf("step %d: %v is not a conflict", i, err)
		}
	}
}
