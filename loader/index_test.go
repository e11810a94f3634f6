package loader

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

// sameBucket returns n MACs of network 1 whose mac_index bucket is one.
func sameBucket(n int) []net.HardwareAddr {
	var out []net.HardwareAddr
	want := uint32(0)
	for i := 0; len(out) < n; i++ {
		m := [6]byte{2, 0, 0x5e, byte(i >> 16), byte(i >> 8), byte(i)}
		b := idxHash(mac48(m), macIndexBits)
		if len(out) == 0 {
			want = b
		}
		if b == want {
			out = append(out, net.HardwareAddr(m[:]))
		}
	}
	return out
}

// TestMACIndex: six endpoints whose MACs share a bucket of four ways (two
// spill into ep_by_mac). A receiver finds every one of them as the
// sender (a foreign source IP is ip_spoof, the own one passes), after a
// delete moves a spilled MAC into the freed way, and after a restart
// (Load on the same pins rebuilds the index unchanged). With the spill
// fallback removed from ep_of_mac on purpose, the spilled senders' spoofed
// frames passed and the test failed. About 0.3 s.
func TestMACIndex(t *testing.T) {
	pins := privateBPFFS(t)
	d, err := Load(t.Context(), pins, testPath)
	if err != nil {
		t.Fatal(err)
	}
	setupEndpoints(t, d)
	macs := sameBucket(6)
	ip := func(i int) string { return netip.AddrFrom4([4]byte{10, 1, 1, byte(i)}).String() }
	for i, m := range macs {
		ep := Endpoint{NetnsCookie: 500 + uint64(i), Ifindex: 2, MAC: m, NetworkID: netA, IPs: addrs(ip(i))}
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	bucket := d.macs.buckets[idxHash(mac48([6]byte(macs[0])), macIndexBits)]
	if bucket.Spill != 2 {
		t.Fatalf("bucket %+v: want 4 ways used and 2 spilled", bucket)
	}
	senders := func(d *Datapath, from int) {
		t.Helper()
		var in, out []progCase
		for i, m := range macs {
			if i < from {
				continue
			}
			in = append(in,
				progCase{m.String() + " own", ethFrame(macA, m, 0x0800, v4(ip(i), "10.1.0.10")), verdictNext,
					func(n int) counts { return counts{"net 1 rx": one(n)} }},
				progCase{m.String() + " spoofed", ethFrame(macA, m, 0x0800, v4("10.1.0.99", "10.1.0.10")), verdictDrop, dropA("ip_spoof")})
			out = append(out, progCase{m.String() + " as A's source", ethFrame(macRouter, m, 0x0800, v4("10.1.0.10", "10.2.0.12")), verdictDrop, dropA("mac_spoof")})
		}
		runCases(t, d, "ep_ingress", in)
		runCases(t, d, "ep_egress", out)
	}
	senders(d, 0)
	if err := d.DeleteEndpoint(500, 2); err != nil {
		t.Fatal(err)
	}
	if b := d.macs.buckets[idxHash(mac48([6]byte(macs[0])), macIndexBits)]; b.Spill != 1 {
		t.Fatalf("after a delete: bucket %+v, want one spilled MAC moved in", b)
	}
	senders(d, 1)
	before := d.macs.buckets
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = loadAt(t, pins)
	for i := range before {
		if d.macs.buckets[i] != before[i] {
			t.Fatalf("bucket %d after a restart: %+v, was %+v", i, d.macs.buckets[i], before[i])
		}
	}
	senders(d, 1)
}

// collide returns n keys other than key in key's bucket, from next(i).
func collide(key uint64, bits, n int, next func(i int) uint64) []uint64 {
	var out []uint64
	for i := 0; len(out) < n; i++ {
		if k := next(i); k != key && idxHash(k, bits) == idxHash(key, bits) {
			out = append(out, k)
		}
	}
	return out
}

// TestIndexSpill: the test device's parents entry and endpoint A's IPv4
// address each come after four others of their bucket, so they live in
// the backing hash only; parent_ingress still finds the parent (its VLAN
// and network-level counters) and A as a hairpin's source, and again
// once a delete moved them into the freed way. With the spill fallback of
// parent_of removed on purpose, the first case counted the broadcast as a
// trunk's (vlan 1/0, no flood) and failed. About 0.2 s.
func TestIndexSpill(t *testing.T) {
	d := newTestDatapath(t)
	ifs := collide(1, parentIndexBits, 4, func(i int) uint64 { return uint64(100 + i) })
	for _, k := range ifs {
		if err := d.SetParent(int(k), 3, 0); err != nil {
			t.Fatal(err)
		}
	}
	a := ip4Key(netip.MustParseAddr("10.1.0.10"))
	ips := collide(a, ip4IndexBits, 4, func(i int) uint64 {
		return ip4Key(netip.AddrFrom4([4]byte{10, 9 + byte(i>>16), byte(i >> 8), byte(i)}))
	})
	for i, k := range ips {
		var ip [4]byte
		binary.LittleEndian.PutUint32(ip[:], uint32(k))
		ep := Endpoint{NetnsCookie: 700 + uint64(i), Ifindex: 2, MAC: net.HardwareAddr{2, 0, 0, 7, 0, byte(i)}, NetworkID: 3, IPs: []netip.Addr{netip.AddrFrom4(ip)}}
		if err := d.SetEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	setupEndpoints(t, d)
	if err := d.SetParent(1, 7, 50); err != nil {
		t.Fatal(err)
	}
	if p, x := d.parentx.buckets[idxHash(1, parentIndexBits)], d.addrs.v4.buckets[idxHash(a, ip4IndexBits)]; p.Spill != 1 || x.Spill != 1 {
		t.Fatalf("buckets %+v and %+v: want one spilled key each", p, x)
	}
	bcast := ethFrame(broadcastMAC, macRouter, 0x0806, arpPacket(1, macRouter, "10.1.0.1", make([]byte, 6), "10.1.0.10"))
	hairpin := ethFrame(macB, macRouter, 0x0800, v4("10.1.0.10", "10.1.0.11"))
	cases := []progCase{
		{"spilled parent", bcast, verdictNext, func(n int) counts {
			return counts{"vlan 1/50 rx": one(n), "flood 7/50 broadcast rx": one(n)}
		}},
		{"spilled address", hairpin, verdictNext, func(n int) counts {
			return counts{"vlan 1/50 rx": one(n), "hairpin 7/50": one(n)}
		}},
	}
	runCases(t, d, "parent_ingress", cases)
	if err := d.DeleteParent(int(ifs[0])); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(700, 2); err != nil {
		t.Fatal(err)
	}
	if p, x := d.parentx.buckets[idxHash(1, parentIndexBits)], d.addrs.v4.buckets[idxHash(a, ip4IndexBits)]; p.Spill != 0 || x.Spill != 0 {
		t.Fatalf("after deletes: buckets %+v and %+v, want the spilled keys moved in", p, x)
	}
	runCases(t, d, "parent_ingress", cases)
}

// TestIP6Fold: endpoint E's IPv6 address has the index key (fold) of A's;
// parent_ingress still finds each as a hairpin's source (the entry points
// at one record, the other address is asked of ep_by_ip), and after E goes
// the key points at A again. With remove dropping the key while A still
// had it, on purpose, A's hairpin was missed and the test failed. ~0.1 s.
func TestIP6Fold(t *testing.T) {
	d := newTestDatapath(t)
	setupEndpoints(t, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("2001:db8:1::10")
	x := a.As16()
	x[7], x[15] = x[7]^1, x[15]^1
	e := netip.AddrFrom16(x)
	if ip6Fold(a) != ip6Fold(e) {
		t.Fatalf("%s and %s: folds %#x and %#x", a, e, ip6Fold(a), ip6Fold(e))
	}
	if err := d.SetEndpoint(Endpoint{NetnsCookie: 800, Ifindex: 2, MAC: macEvil, NetworkID: 3, IPs: []netip.Addr{e}}); err != nil {
		t.Fatal(err)
	}
	hairpin := func(src netip.Addr) []byte {
		return ethFrame(macRouter, macRouter, 0x86dd, v6(src.String(), "2001:db8:2::1"))
	}
	with := func(extra string) func(int) counts {
		return func(n int) counts { return counts{"vlan 1/0 rx": one(n), extra: one(n)} }
	}
	runCases(t, d, "parent_ingress", []progCase{
		{"A's address", hairpin(a), verdictNext, with("hairpin 1/0")},
		{"E's address, same fold", hairpin(e), verdictNext, with("hairpin 1/0")},
	})
	if err := d.DeleteEndpoint(800, 2); err != nil {
		t.Fatal(err)
	}
	runCases(t, d, "parent_ingress", []progCase{
		{"A's address after E went", hairpin(a), verdictNext, with("hairpin 1/0")},
		{"E's address after E went", hairpin(e), verdictNext, func(n int) counts { return counts{"vlan 1/0 rx": one(n)} }},
	})
}

// TestIndexRemoveOrder: a delete that moves a spilled key into the freed
// way writes the bucket so that a program reading the ways before a write
// and Spill after it still finds the key: in a way of the earlier bucket,
// or sent to the backing hash by the later one's Spill. One write of both
// (the key in its way, Spill down) would let such a reader miss it. No
// kernel: the writes are recorded.
func TestIndexRemoveOrder(t *testing.T) {
	var writes []idxBucket
	x := &index{bits: macIndexBits, keyMask: 1<<48 - 1, buckets: make([]idxBucket, 1<<macIndexBits),
		spilled: map[uint32]map[uint64]uint64{}}
	x.put = func(_ uint32, b *idxBucket) error { writes = append(writes, *b); return nil }
	var keys []uint64
	for _, m := range sameBucket(idxWays + 1) {
		keys = append(keys, mac48([6]byte(m)))
	}
	for n, k := range keys {
		if err := x.set(k, uint64(n+1)<<48); err != nil {
			t.Fatal(err)
		}
	}
	i := idxHash(keys[0], macIndexBits)
	spilled := keys[idxWays]
	if x.buckets[i].Spill != 1 {
		t.Fatalf("bucket %+v: want the fifth key spilled (the test would prove nothing)", x.buckets[i])
	}
	writes = []idxBucket{x.buckets[i]} // as readers see it before the delete
	if err := x.remove(keys[0], 1<<48); err != nil {
		t.Fatal(err)
	}
	inWays := func(b idxBucket) bool {
		for _, e := range b.E {
			if e&x.keyMask == spilled && e>>48 != 0 {
				return true
			}
		}
		return false
	}
	last := writes[len(writes)-1]
	if !inWays(last) || last.Spill != 0 {
		t.Fatalf("after the delete: bucket %+v, want the spilled key in a way and Spill 0", last)
	}
	for n := 1; n < len(writes); n++ {
		if !inWays(writes[n-1]) && writes[n].Spill == 0 {
			t.Errorf("write %d: a reader with the ways of %+v and Spill of %+v finds the moved key nowhere", n, writes[n-1], writes[n])
		}
	}
}
