package ipam

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"
)

// Targets (issue 3): /16 fill < 20 ms, 1M in a /12 < 0.5 s, 1M in a /64
// < 1 s and < 64 MiB, release+reallocate >= 5M ops/s, Load of 1M well
// under a second.

func fill(b *testing.B, s *Space, v6 bool, n int, owner func(int) string) {
	for i := range n {
		if _, err := s.Allocate(v6, owner(i)); err != nil {
			b.Fatalf("allocation %d: %v", i, err)
		}
	}
}

func sameOwner(int) string { return "endpoint" }

func epOwner(i int) string { return "ep" + strconv.Itoa(i) }

// BenchmarkFillSlash16 allocates every address of a /16 (65534).
func BenchmarkFillSlash16(b *testing.B) {
	for b.Loop() {
		s := newSpace(b, Options{}, PoolConfig{Subnet: pfx("10.20.0.0/16")})
		fill(b, s, false, 1<<16-3, sameOwner)
		if _, err := s.Allocate(false, "x"); err == nil {
			b.Fatal("/16 not full")
		}
	}
}

// BenchmarkAlloc1MSlash12 allocates 1M addresses of a /12.
func BenchmarkAlloc1MSlash12(b *testing.B) {
	for b.Loop() {
		s := newSpace(b, Options{}, PoolConfig{Subnet: pfx("10.16.0.0/12")})
		fill(b, s, false, 1_000_000, sameOwner)
	}
}

// BenchmarkAlloc1MV6 allocates 1M addresses of a /64, each with its own
// owner string, and reports the heap held by the Space (owners included).
func BenchmarkAlloc1MV6(b *testing.B) {
	var heap float64
	for b.Loop() {
		before := heapInUse()
		s := newSpace(b, Options{}, PoolConfig{Subnet: pfx("2001:db8:1::/64")})
		fill(b, s, true, 1_000_000, epOwner)
		b.StopTimer()
		heap = float64(heapInUse()-before) / (1 << 20)
		runtime.KeepAlive(s)
		b.StartTimer()
	}
	b.ReportMetric(heap, "heap-MiB")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkSteadyReleaseRealloc: a /16 with 60000 held; each op releases a
// pseudo-random held address and allocates again (one op = one Release
// plus one Allocate).
func BenchmarkSteadyReleaseRealloc(b *testing.B) {
	s := newSpace(b, Options{}, PoolConfig{Subnet: pfx("10.30.0.0/16")})
	const n = 60000
	held := make([]netip.Addr, n)
	for i := range held {
		held[i] = alloc(b, s, false, "endpoint").Addr()
	}
	x := uint32(1)
	for b.Loop() {
		x = x*1664525 + 1013904223
		i := x % n
		s.Release(held[i])
		p, err := s.Allocate(false, "endpoint")
		if err != nil {
			b.Fatal(err)
		}
		held[i] = p.Addr()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mops/s")
}

// BenchmarkLoad1M rebuilds a /12 holding 1M addresses with distinct owners.
func BenchmarkLoad1M(b *testing.B) {
	s := newSpace(b, Options{}, PoolConfig{Subnet: pfx("10.16.0.0/12")})
	fill(b, s, false, 1_000_000, epOwner)
	held := s.Held()
	for b.Loop() {
		s2 := newSpace(b, Options{}, PoolConfig{Subnet: pfx("10.16.0.0/12")})
		if err := s2.Load(held); err != nil {
			b.Fatal(err)
		}
	}
}
