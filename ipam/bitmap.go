package ipam

import (
	"math/bits"
	"slices"
)

// word tracks 64 consecutive offsets of a pool. Words that hold nothing are
// absent from the bitset, so memory follows what is held, not the subnet.
//
// owners is nil until a held bit has an owner (not ""), and again once the
// word holds nothing. Else it is sparse, one owner per held bit by rank
// (an insert or removal moves the owners above it), until the word holds
// denseAt bits; then it is dense, one per bit (64 long: nothing moves),
// until the word holds nothing. A sparse word never has 64 owners: it is
// dense by then.
type word struct {
	held   uint64 // held by an endpoint or reserved
	res    uint64 // reserved (subset of held)
	queued uint64 // the offset sits in a free heap
	owners []string
}

// denseAt is the count of held bits at which a word's owners go dense.
const denseAt = 32

func (w *word) rank(bit uint) int { return bits.OnesCount64(w.held & (1<<bit - 1)) }

func (w *word) dense() bool { return len(w.owners) == 64 }

// index is where bit's owner is in owners.
func (w *word) index(bit uint) int {
	if w.dense() {
		return int(bit)
	}
	return w.rank(bit)
}

// insert marks bit held by owner.
func (w *word) insert(bit uint, owner string) {
	r := w.index(bit)
	w.held |= 1 << bit
	switch {
	case w.dense():
		w.owners[bit] = owner
	case w.owners != nil:
		w.owners = slices.Insert(w.owners, r, owner)
	case owner != "":
		n := bits.OnesCount64(w.held)
		w.owners = make([]string, n, max(4, 1<<bits.Len(uint(n-1))))
		w.owners[r] = owner
	}
	if w.owners != nil && !w.dense() && bits.OnesCount64(w.held) >= denseAt {
		w.spread()
	}
}

// spread makes sparse owners dense.
func (w *word) spread() {
	dense := make([]string, 64)
	i := 0
	for h := w.held; h != 0; h &= h - 1 {
		dense[bits.TrailingZeros64(h)] = w.owners[i]
		i++
	}
	w.owners = dense
}

// remove clears bit, which must be held.
func (w *word) remove(bit uint) {
	r := w.index(bit)
	w.held &^= 1 << bit
	switch {
	case w.owners == nil:
	case w.held == 0:
		w.owners = nil
	case w.dense():
		w.owners[bit] = ""
	default:
		w.owners = slices.Delete(w.owners, r, r+1)
	}
}

func (w *word) owner(bit uint) string {
	if w.owners == nil {
		return ""
	}
	return w.owners[w.index(bit)]
}

// bitset is a sparse map of words keyed by offset/64, with a one-entry
// cache that makes sequential work cheap.
type bitset struct {
	words   map[uint64]*word
	lastKey uint64
	last    *word
}

func newBitset() bitset { return bitset{words: make(map[uint64]*word)} }

func (b *bitset) get(key uint64) *word {
	if b.last != nil && b.lastKey == key {
		return b.last
	}
	w := b.words[key]
	if w != nil {
		b.last, b.lastKey = w, key
	}
	return w
}

func (b *bitset) getOrCreate(key uint64) *word {
	if w := b.get(key); w != nil {
		return w
	}
	w := new(word)
	b.words[key] = w
	b.last, b.lastKey = w, key
	return w
}

// dropIfEmpty forgets a word that tracks nothing any more.
func (b *bitset) dropIfEmpty(key uint64, w *word) {
	if w.held != 0 || w.queued != 0 {
		return
	}
	delete(b.words, key)
	if b.last == w {
		b.last = nil
	}
}

// nextClear returns the lowest offset in [from, last] that is neither held
// nor reserved. It skips whole words, so it costs one lookup per 64 held
// offsets.
func (b *bitset) nextClear(from, last uint64) (uint64, bool) {
	for from <= last {
		w := b.get(from >> 6)
		if w == nil {
			return from, true
		}
		if free := ^w.held >> (from & 63); free != 0 {
			off := from + uint64(bits.TrailingZeros64(free))
			return off, off <= last
		}
		next := (from | 63) + 1
		if next == 0 { // wrapped past the end of the 64-bit space
			break
		}
		from = next
	}
	return 0, false
}

// u64heap is a binary min-heap of offsets.
type u64heap []uint64

func (h *u64heap) push(x uint64) {
	s := append(*h, x)
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p] <= x {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = x
	*h = s
}

func (h *u64heap) pop() uint64 {
	s := *h
	top := s[0]
	n := len(s) - 1
	x := s[n]
	s = s[:n]
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if c+1 < n && s[c+1] < s[c] {
			c++
		}
		if x <= s[c] {
			break
		}
		s[i] = s[c]
		i = c
	}
	if n > 0 {
		s[i] = x
	}
	*h = s
	return top
}
