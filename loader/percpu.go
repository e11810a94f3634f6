package loader

// Reading per-CPU counter maps and summing their values over CPUs.

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

func (p *pbValue) add(o pbValue) {
	p.Packets += o.Packets
	p.Bytes += o.Bytes
}

func (p pbValue) counter() Counter { return Counter(p) }

// readPerCPU calls fn with each key of a per-CPU map and its values (one
// per possible CPU; fn must not keep the slice); with limit > 0, with
// the first limit keys only (an array's slots 0..limit-1). It reads in
// batches, a few syscalls for the whole map, and falls back to a
// key-by-key walk of every key on kernels without batch lookups.
func readPerCPU[K any, V any](m *ebpf.Map, limit int, fn func(K, []V)) error {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	chunk := 256
	if limit > 0 {
		chunk = min(chunk, limit)
	}
	keys, vals := make([]K, chunk), make([]V, chunk*ncpu)
	var cursor ebpf.MapBatchCursor
	for read := 0; limit <= 0 || read < limit; {
		if limit > 0 && limit-read < chunk {
			keys, vals = keys[:limit-read], vals[:(limit-read)*ncpu]
		}
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		if read == 0 && errors.Is(err, ebpf.ErrNotSupported) {
			return iteratePerCPU(m, fn)
		}
		for i := range n {
			fn(keys[i], vals[i*ncpu:(i+1)*ncpu])
		}
		read += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read counters: %w", err)
		}
	}
	return nil
}

func iteratePerCPU[K any, V any](m *ebpf.Map, fn func(K, []V)) error {
	var k K
	var v []V
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(k, v)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read counters: %w", err)
	}
	return nil
}

func sumPB(vs []pbValue) Counter {
	var c Counter
	for _, v := range vs {
		c.Packets += v.Packets
		c.Bytes += v.Bytes
	}
	return c
}

func sumTraffic(vs []trafficValue) Traffic {
	var t Traffic
	for _, v := range vs {
		t.Rx.Packets += v.Rx.Packets
		t.Rx.Bytes += v.Rx.Bytes
		t.Tx.Packets += v.Tx.Packets
		t.Tx.Bytes += v.Tx.Bytes
	}
	return t
}
