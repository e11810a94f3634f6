package loader

import (
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
	d, err := Load(t.Context(), pins)
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
