package ipam

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestWordOwners: a word's owners follow its held bits through random
// inserts and removals around denseAt (sparse to dense), checked against
// a plain map after every step.
func TestWordOwners(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seed  uint64
		steps int
		fill  float64 // chance that a step inserts
	}{
		{"fills up", 1, 400, 0.8},
		{"hovers around denseAt", 2, 2000, 0.5},
		{"sparse", 3, 400, 0.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tc.seed, 0))
			var w word
			model := map[uint]string{}
			wasDense := false
			for step := range tc.steps {
				bit := uint(rng.IntN(64))
				_, held := model[bit]
				switch {
				case !held && rng.Float64() < tc.fill:
					owner := []string{"", "a", "b", fmt.Sprint("e", step)}[rng.IntN(4)]
					w.insert(bit, owner)
					model[bit] = owner
				case held:
					w.remove(bit)
					delete(model, bit)
				}
				wasDense = wasDense || w.dense()
				if n := bits.OnesCount64(w.held); n != len(model) {
					t.Fatalf("step %d: %d bits held, want %d", step, n, len(model))
				}
				if w.owners != nil && !w.dense() && len(w.owners) != len(model) {
					t.Fatalf("step %d: %d sparse owners for %d held bits", step, len(w.owners), len(model))
				}
				for b, want := range model {
					if got := w.owner(b); got != want {
						t.Fatalf("step %d: owner of bit %d = %q, want %q (dense %v)", step, b, got, want, w.dense())
					}
				}
			}
			if tc.fill >= 0.5 && !wasDense {
				t.Fatal("the word never went dense: the test does not cover the dense form")
			}
		})
	}
}

// TestWordFillDrainRefill: a word filled to 64 with owners goes dense,
// drained to nothing drops its owners, and refilled with "" owners shows
// none of the old ones.
func TestWordFillDrainRefill(t *testing.T) {
	var w word
	for b := range uint(64) {
		w.insert(b, fmt.Sprint("o", b))
	}
	if !w.dense() {
		t.Fatalf("a full word's owners are %d long, want dense (64)", len(w.owners))
	}
	for b := range uint(64) {
		if got, want := w.owner(b), fmt.Sprint("o", b); got != want {
			t.Fatalf("full: owner of %d = %q, want %q", b, got, want)
		}
	}
	for b := range uint(64) {
		w.remove(63 - b)
	}
	if w.held != 0 || w.owners != nil {
		t.Fatalf("drained: held %#x, owners %d long; want none of either", w.held, len(w.owners))
	}
	for b := uint(0); b < 64; b += 2 {
		w.insert(b, "")
	}
	w.insert(1, "new")
	for b := uint(0); b < 64; b += 2 {
		if got := w.owner(b); got != "" {
			t.Fatalf("refilled: owner of %d = %q, want none", b, got)
		}
	}
	if got := w.owner(1); got != "new" {
		t.Fatalf("refilled: owner of 1 = %q, want new", got)
	}
}
