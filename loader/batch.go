package loader

import (
	"errors"

	"github.com/cilium/ebpf"
)

// batchSize is how many entries readEach asks for per system call.
const batchSize = 512

// readEach calls fn with every entry of the hash map m, read in batches
// (BPF_MAP_LOOKUP_BATCH: a few system calls for a table of thousands,
// where an iterator makes two per entry), or with an iterator where the
// kernel has no batches. An entry changed meanwhile may be missed or seen
// twice, as with an iterator.
func readEach[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys, vals := make([]K, batchSize), make([]V, batchSize)
	var cursor ebpf.MapBatchCursor
	for {
		got, err := m.BatchLookup(&cursor, keys, vals, nil)
		if errors.Is(err, ebpf.ErrNotSupported) && got == 0 {
			break
		}
		for i := range got {
			fn(keys[i], vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	var k K
	var v V
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(k, v)
	}
	return it.Err()
}
