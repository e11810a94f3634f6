package store

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// TestGarbledPagesNoCrash writes 1-32 random bytes at a random place of
// a random data page of a good state, 100 times (fixed seed), and opens
// each in a child: the child must refuse or open the file, never crash.
func TestGarbledPagesNoCrash(t *testing.T) {
	if raceEnabled {
		t.Skip("100 child processes are too slow under the race detector; run without -race")
	}
	_, path := goodState(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, n, ps := metas(t, data)
	crashes := 0
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		pg := 2 + rng.IntN(int(m[n].hwm)-2)
		dir, p := goodState(t)
		d := append([]byte(nil), data...)
		off := pg*ps + rng.IntN(ps-64)
		for j := range 1 + rng.IntN(32) {
			d[off+j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, d, 0o600); err != nil {
			t.Fatal(err)
		}
		out := openInChildRaw(dir)
		if !strings.HasPrefix(out, "problem=") && !strings.HasPrefix(out, "opened") {
			crashes++
			t.Logf("page %d garbled at %d: %.300s", pg, off, out)
		}
	}
	if crashes > 0 {
		t.Fatalf("%d crashes", crashes)
	}
}
