package engine

import (
	"testing"
	"time"
)

// TestLinkTombs: a link buried after a listing's number is gone for that
// listing, not for a later one; prune keeps what a listing from its
// number on needs; a full set drops the tombs older than tombAge.
func TestLinkTombs(t *testing.T) {
	var tombs linkTombs
	before := tombs.now()
	tombs.bury(7)
	after := tombs.now()
	if !tombs.buried(7, before) || tombs.buried(7, after) || tombs.buried(8, before) {
		t.Errorf("buried(7, %d), buried(7, %d), buried(8, %d): %v %v %v; want true false false",
			before, after, before, tombs.buried(7, before), tombs.buried(7, after), tombs.buried(8, before))
	}
	tombs.bury(8)
	tombs.prune(after)
	if tombs.buried(7, before) || !tombs.buried(8, after) {
		t.Errorf("after prune(%d): link 7 still buried, or link 8 not", after)
	}
	for i := range 300 {
		tombs.bury(100 + i)
	}
	tombs.gone[100] = tomb{seq: tombs.gone[100].seq, at: time.Now().Add(-2 * tombAge)}
	tombs.bury(1000)
	if _, ok := tombs.gone[100]; ok {
		t.Errorf("a tomb older than %v kept with %d tombs", tombAge, len(tombs.gone))
	}
	if !tombs.buried(101, after) {
		t.Error("a recent tomb dropped")
	}
}
