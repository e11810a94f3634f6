package loader

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestLayouts checks that the Go mirrors have the sizes of the C structs
// (as the BTF of the objects declares them in the map specs), in the
// objects of both paths.
func TestLayouts(t *testing.T) {
	specs, err := loadSpecs(false)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := loadSpecs(true)
	if err != nil {
		t.Fatal(err)
	}
	for name, spec := range direct {
		specs[name+" (direct)"] = spec
	}
	want := map[string][2]uintptr{
		"ep_table":     {unsafe.Sizeof(epKey{}), unsafe.Sizeof(epInfo{})},
		"ep_by_mac":    {unsafe.Sizeof(macKey{}), unsafe.Sizeof(epInfo{})},
		"dhcp_ids":     {unsafe.Sizeof(macKey{}), unsafe.Sizeof(dhcpIDs{})},
		"ep_netns":     {8, 1},
		"ep_by_ip":     {unsafe.Sizeof(ipKey{}), unsafe.Sizeof(ipInfo{})},
		"endpoints":    {4, unsafe.Sizeof(epInfo{})},
		"mac_index":    {4, unsafe.Sizeof(idxBucket{})},
		"ip4_index":    {4, unsafe.Sizeof(idxBucket{})},
		"ip6_index":    {4, unsafe.Sizeof(idxBucket{})},
		"parent_index": {4, unsafe.Sizeof(idxBucket{})},
		"parents":      {4, unsafe.Sizeof(parentInfo{})},
		"vlan_stats":   {unsafe.Sizeof(vlanKey{}), unsafe.Sizeof(trafficValue{})},
		"net_stats":    {4, unsafe.Sizeof(netCounters{})},
		"drop_stats":   {unsafe.Sizeof(dropKey{}), unsafe.Sizeof(pbValue{})},
		"malformed":    {4, unsafe.Sizeof(pbValue{})},
		"map_full":     {4, 8},
		"ep_progs":     {4, 4},
		"ra_sources":   {4, unsafe.Sizeof(raSource{})},
		"gateways":     {4, unsafe.Sizeof(gatewaysValue{})},
	}
	if len(want) != len(mapNames) {
		t.Fatalf("mapNames has %d maps, the test %d", len(mapNames), len(want))
	}
	for prog, spec := range specs {
		for name, sizes := range want {
			ms := spec.Maps[name]
			if ms == nil {
				t.Fatalf("%s: no map %s", prog, name)
			}
			if uintptr(ms.KeySize) != sizes[0] || uintptr(ms.ValueSize) != sizes[1] {
				t.Errorf("%s: map %s is key %d value %d bytes, Go has %d and %d",
					prog, name, ms.KeySize, ms.ValueSize, sizes[0], sizes[1])
			}
		}
		for name, goType := range map[string]reflect.Type{"endpoints": reflect.TypeFor[epInfo](), "mac_index": reflect.TypeFor[idxBucket]()} {
			sameFields(t, prog+": "+name, spec.Maps[name].Value, goType)
		}
	}
}

// sameFields fails unless the C struct (BTF) and the Go struct have the
// same fields (network_id is NetworkID) in the same order at the same
// offsets: sizes alone would not see two fields swapped.
func sameFields(t *testing.T, what string, c btf.Type, g reflect.Type) {
	t.Helper()
	st, ok := c.(*btf.Struct)
	if !ok {
		t.Fatalf("%s: value is %T, not a struct", what, c)
	}
	if len(st.Members) != g.NumField() {
		t.Fatalf("%s: C has %d fields, Go %d", what, len(st.Members), g.NumField())
	}
	for i, m := range st.Members {
		f := g.Field(i)
		if strings.ReplaceAll(m.Name, "_", "") != strings.ToLower(f.Name) || uintptr(m.Offset.Bytes()) != f.Offset {
			t.Errorf("%s: C field %s at %d, Go field %s at %d", what, m.Name, m.Offset.Bytes(), f.Name, f.Offset)
		}
	}
}

func TestLoad(t *testing.T) {
	d := newTestDatapath(t)
	p, err := d.endpointPrograms(42)
	if err != nil {
		t.Fatal(err)
	}
	for name, prog := range map[string]any{"ep_ingress": p.ingress, "ep_egress": p.egress, "parent_ingress": d.parentIngress, "parent_egress": d.parentEgress} {
		if reflect.ValueOf(prog).IsNil() {
			t.Errorf("%s not loaded", name)
		}
	}
}

// BenchmarkProgram measures each program with BPF_PROG_TEST_RUN on a
// legitimate UDP frame of 64 and 1500 bytes (the full pass path: every
// check, the DHCP guard included, every counter; ep_ingress a frame from
// another endpoint, checked against its sender's entry; parent_ingress a
// frame for an endpoint, which it marks; parent_egress one from an
// endpoint, checked like ep_ingress), next to an empty TC program in the same run. ns/op is the
// kernel's time per run (repeat = b.N in one syscall). Besides the verdict
// (which an early return could give too), the counters
// must have moved on every run, by the frame's size each: the run went all
// the way to the counting at the end of the path.
func BenchmarkProgram(b *testing.B) {
	d := newTestDatapath(b)
	setupEndpoints(b, d)
	if err := d.SetParent(1, netA, 0); err != nil {
		b.Fatal(err)
	}
	p, err := d.endpointPrograms(testCookie)
	if err != nil {
		b.Fatal(err)
	}
	empty := foreignProgram(b)
	fromA := func(n int) []byte {
		return ethFrame(macRouter, macA, 0x0800, ipv4Packet("10.1.0.10", "198.51.100.7", 17, udp(40000, 5201, n-14-20-8)))
	}
	toA := func(n int) []byte {
		return ethFrame(macA, macRouter, 0x0800, ipv4Packet("198.51.100.7", "10.1.0.10", 17, udp(5201, 40000, n-14-20-8)))
	}
	// Between two endpoints (no wire mark): ep_ingress checks the frame
	// against its sender's entry, its longest pass path.
	fromBToA := func(n int) []byte {
		return ethFrame(macA, macB, 0x0800, ipv4Packet("10.1.0.11", "10.1.0.10", 17, udp(5201, 40000, n-14-20-8)))
	}
	progs := []struct {
		name    string
		prog    *ebpf.Program
		frame   func(int) []byte
		counter string // the counter each run moves; "" for the empty program
	}{
		{"empty", empty, toA, ""},
		{"ep_egress", p.egress, fromA, "net 1 tx"},
		{"ep_ingress", p.ingress, fromBToA, "net 1 rx"},
		{"parent_ingress", d.parentIngress, toA, "vlan 1/0 rx"},
		{"parent_egress", d.parentEgress, fromA, "vlan 1/0 tx"},
	}
	for _, pr := range progs {
		for _, size := range []int{64, 1500} {
			b.Run(pr.name+"/"+strconv.Itoa(size), func(b *testing.B) {
				before := snapshot(b, d)
				ret, per, err := pr.prog.Benchmark(pr.frame(size), b.N, b.ResetTimer)
				if err != nil {
					b.Fatal(err)
				}
				if want := passes(pr.name); ret != want {
					b.Fatalf("verdict %#x, want %#x (passed)", ret, want)
				}
				expectRuns(b, snapshot(b, d).minus(before), pr.counter, b.N, size)
				b.ReportMetric(float64(per.Nanoseconds()), "ns/run")
			})
		}
	}
}

// expectRuns fails unless delta is counter alone, moved by at least runs
// packets of size bytes each. (At least: the library repeats a test run
// that a signal interrupted, and the interrupted part was counted too.)
func expectRuns(b *testing.B, delta counts, counter string, runs, size int) {
	b.Helper()
	c, ok := delta[counter]
	switch {
	case counter == "" && len(delta) == 0:
	case len(delta) != 1 || !ok || c.Packets < uint64(runs) || c.Bytes != c.Packets*uint64(size):
		b.Fatalf("%d runs of a %d-byte frame moved the counters by:%s\nwant %q by %d packets (or more), %d bytes each",
			runs, size, delta, counter, runs, size)
	}
}
