package engine

import (
	"net"
	"testing"
)

// TestMACClaims: a MAC claimed by one network's attach is refused to
// another's until released; the same network may claim it again (its own
// index refuses a second endpoint), and a release by another network
// leaves the claim.
func TestMACClaims(t *testing.T) {
	var c macClaims
	mac := net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 1}
	steps := []struct {
		op, network string
		wantErr     bool
	}{
		{"claim", "a", false},
		{"claim", "b", true},
		{"claim", "a", false},
		{"release", "b", false},
		{"claim", "b", true},
		{"release", "a", false},
		{"claim", "b", false},
		{"claim", "a", true},
	}
	for i, s := range steps {
		var err error
		if s.op == "claim" {
			err = c.claim(mac, s.network)
		} else {
			c.release(mac, s.network)
		}
		if (err != nil) != s.wantErr {
			t.Fatalf("step %d, %s by %s: err %v, want error %v", i, s.op, s.network, err, s.wantErr)
		}
		if err != nil && KindOf(err) != KindConflict {
			t.Fatalf("step %d: %v is not a conflict", i, err)
		}
	}
}
