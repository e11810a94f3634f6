package docker

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/engine/enginetest"
	"github.com/mvlan/mvlan/plugin"
)

// These tests run Docker's call sequences on an engine over enginetest's
// in-memory kernel, without root; TestDocker* in cmd/mvlan run them with
// a real dockerd on the real kernel.

func newDriver(t *testing.T, k *enginetest.Kernel) (*Driver, *engine.Engine) {
	t.Helper()
	eng, err := k.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := New(eng, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.Start(ctx)
	return d, eng
}

const netID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// request asks d for an address and fails the test if it cannot.
func request(t *testing.T, d *Driver, r plugin.AddressRequest) netip.Prefix {
	t.Helper()
	p, err := d.DockerRequestAddress(context.Background(), r)
	if err != nil {
		t.Fatalf("RequestAddress %+v: %v", r, err)
	}
	return p
}

// TestIPAMFlow: docker network create --subnet --ip-range, then docker run
// twice and docker rm, as Docker calls the plugin: addresses come from the
// ip-range, an address given to Docker is held until ReleaseAddress (not
// at DeleteEndpoint), and one an endpoint has is never released; a
// CreateEndpoint or Join asked again gets the same answer.
func TestIPAMFlow(t *testing.T) {
	ctx := context.Background()
	k := enginetest.New("eth0")
	d, eng := newDriver(t, k)
	subnet, ipRange := netip.MustParsePrefix("172.16.86.0/24"), netip.MustParsePrefix("172.16.86.128/25")
	pool, err := d.DockerRequestPool(ctx, plugin.PoolRequest{Pool: subnet, SubPool: ipRange})
	if err != nil {
		t.Fatal(err)
	}
	gw := request(t, d, plugin.AddressRequest{PoolID: pool, Gateway: true})
	if gw.String() != "172.16.86.1/24" {
		t.Fatalf("gateway %s, want 172.16.86.1/24", gw)
	}
	if err := d.DockerCreateNetwork(ctx, plugin.Network{ID: netID, Options: map[string]string{"parent": "eth0", "name": "dnet"},
		Pools: []plugin.Pool{{Subnet: subnet, Gateway: gw.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	n, err := eng.Network("dnet")
	if err != nil || len(n.Pools) != 1 || n.Pools[0].IPRange != ipRange {
		t.Fatalf("network: %+v %v; want the requested ip-range %s", n.Pools, err, ipRange)
	}

	a1 := request(t, d, plugin.AddressRequest{PoolID: pool})
	if a1.String() != "172.16.86.128/24" {
		t.Fatalf("first address %s, want the ip-range's first, 172.16.86.128/24", a1)
	}
	ep1 := strings.Repeat("a", 64)
	mac1, err := d.DockerCreateEndpoint(ctx, plugin.Endpoint{NetworkID: netID, ID: ep1, Addrs: []netip.Prefix{a1}})
	if err != nil {
		t.Fatal(err)
	}
	// dockerd asks again (its answer lost): the same answer; not with
	// another address.
	if again, err := d.DockerCreateEndpoint(ctx, plugin.Endpoint{NetworkID: netID, ID: ep1, Addrs: []netip.Prefix{a1}}); err != nil || again != mac1 {
		t.Fatalf("CreateEndpoint again: %s, %v; want %s again", again, err, mac1)
	}
	other := request(t, d, plugin.AddressRequest{PoolID: pool})
	if _, err := d.DockerCreateEndpoint(ctx, plugin.Endpoint{NetworkID: netID, ID: ep1, Addrs: []netip.Prefix{other}}); engine.KindOf(err) != engine.KindConflict {
		t.Fatalf("CreateEndpoint again with another address: %v; want a conflict", err)
	}
	if err := d.DockerReleaseAddress(ctx, pool, other.Addr()); err != nil {
		t.Fatal(err)
	}
	// Another endpoint cannot take the same address.
	if _, err := d.DockerCreateEndpoint(ctx, plugin.Endpoint{NetworkID: netID, ID: strings.Repeat("b", 64), Addrs: []netip.Prefix{a1}}); engine.KindOf(err) != engine.KindConflict {
		t.Fatalf("second endpoint with %s: %v, want a conflict", a1, err)
	}
	sandbox := "/fake/sandbox1"
	k.AddNetns(sandbox)
	j, err := d.DockerJoin(ctx, netID, ep1, sandbox)
	if err != nil || j.Gateway != gw.Addr() {
		t.Fatalf("join: %+v %v; want gateway %s", j, err, gw.Addr())
	}
	if again, err := d.DockerJoin(ctx, netID, ep1, sandbox); err != nil || again != j {
		t.Fatalf("Join again: %+v, %v; want %+v again", again, err, j)
	}
	// Receivers know the endpoint before Docker brings its link up.
	hl, ok := k.HostLink(j.SrcName)
	if !ok || !k.TableHas(enginetest.HostPath, hl.Index) {
		t.Fatalf("joined endpoint's link %s (%v) is not in the datapath's table", j.SrcName, ok)
	}
	// Docker moves the link into the sandbox; the watch finishes it.
	if err := k.MoveHostLink(j.SrcName, sandbox, "eth0", []netip.Prefix{a1}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, eng, ep1)
	e, _ := eng.Endpoint(ep1)
	if e.IfName != "eth0" || !k.TableHas(sandbox, e.Ifindex) {
		t.Fatalf("ready endpoint %+v not in the datapath's table", e)
	}
	if k.TableHas(enginetest.HostPath, hl.Index) {
		t.Fatal("the entry under the link's host keys stayed after it moved")
	}
	// Moved with no moment unknown: the container may send already.
	if known, forgotten := k.Sender(hl.MAC); !known || forgotten != 0 {
		t.Fatalf("MAC %s of the ready endpoint: known %v, forgotten %d times since Join; want known, never forgotten", e.MAC, known, forgotten)
	}
	a2 := request(t, d, plugin.AddressRequest{PoolID: pool})
	if a2 == a1 {
		t.Fatalf("second address %s is the first endpoint's", a2)
	}
	// docker run --ip of an address taken: refused, naming its holder.
	for _, tc := range []struct {
		addr netip.Addr
		who  string
	}{{a1.Addr(), "endpoint "}, {a2.Addr(), "Docker's reservation"}} {
		_, err := d.DockerRequestAddress(ctx, plugin.AddressRequest{PoolID: pool, Address: tc.addr})
		want := "address " + tc.addr.String() + " is already in use by " + tc.who
		if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), want) ||
			!strings.HasSuffix(err.Error(), "; pick another address or leave --ip out") {
			t.Fatalf("RequestAddress of %s: %v; want a conflict saying %q and what to do", tc.addr, err, want)
		}
	}
	if err := d.DockerReleaseAddress(ctx, pool, a2.Addr()); err != nil {
		t.Fatal(err)
	}

	// docker rm: Leave, DeleteEndpoint, then ReleaseAddress.
	if err := d.DockerLeave(ctx, netID, ep1); err != nil {
		t.Fatal(err)
	}
	if err := d.DockerDeleteEndpoint(ctx, netID, ep1); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Endpoint(ep1); engine.KindOf(err) != engine.KindNotFound {
		t.Fatalf("endpoint after DeleteEndpoint: %v", err)
	}
	// Held for Docker until it releases it: not handed out meanwhile.
	if next := request(t, d, plugin.AddressRequest{PoolID: pool}); next == a1 {
		t.Fatalf("address %s handed out again before Docker released it", a1)
	} else if err := d.DockerReleaseAddress(ctx, pool, next.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := d.DockerReleaseAddress(ctx, pool, a1.Addr()); err != nil {
		t.Fatal(err)
	}
	if again := request(t, d, plugin.AddressRequest{PoolID: pool}); again != a1 {
		t.Fatalf("after ReleaseAddress got %s, want %s back", again, a1)
	}
	drift, err := eng.Check(ctx)
	if err != nil || len(drift) != 1 || !strings.Contains(drift[0], `held by "Docker's reservation"`) {
		t.Fatalf("drift %q %v; want only the address Docker holds", drift, err)
	}
}

// TestIPAMRefusesOverlap: a pool that overlaps a network's subnet, or a
// pool being created, is refused.
func TestIPAMRefusesOverlap(t *testing.T) {
	ctx := context.Background()
	d, _ := newDriver(t, enginetest.New("eth0"))
	if _, err := d.DockerRequestPool(ctx, plugin.PoolRequest{Pool: netip.MustParsePrefix("10.1.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	_, err := d.DockerRequestPool(ctx, plugin.PoolRequest{Pool: netip.MustParsePrefix("10.1.2.0/24")})
	if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("overlapping pool: %v, want a conflict", err)
	}
	if _, err := d.DockerRequestPool(ctx, plugin.PoolRequest{}); engine.KindOf(err) != engine.KindInvalid {
		t.Fatalf("pool without a subnet: %v, want invalid", err)
	}
}

func waitReady(t *testing.T, eng *engine.Engine, id string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		e, err := eng.Endpoint(id)
		if err == nil && e.State == "ready" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %s not ready: %+v %v", id[:12], e, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHandoffStalls: a joined endpoint's row under the host's keys is
// moving (any container may send its MAC while Docker moves the link in);
// when Docker does not move the link within handoffWait, the row stays but
// is moving no more, and the endpoint is still handing off.
func TestHandoffStalls(t *testing.T) {
	ctx := context.Background()
	defer func(w time.Duration) { handoffWait = w }(handoffWait)
	handoffWait = 300 * time.Millisecond
	k := enginetest.New("eth0")
	d, eng := newDriver(t, k)
	subnet := netip.MustParsePrefix("172.16.86.0/24")
	pool, err := d.DockerRequestPool(ctx, plugin.PoolRequest{Pool: subnet})
	if err != nil {
		t.Fatal(err)
	}
	gw := request(t, d, plugin.AddressRequest{PoolID: pool, Gateway: true})
	if err := d.DockerCreateNetwork(ctx, plugin.Network{ID: netID, Options: map[string]string{"parent": "eth0", "name": "dnet"},
		Pools: []plugin.Pool{{Subnet: subnet, Gateway: gw.Addr()}}}); err != nil {
		t.Fatal(err)
	}
	ep := strings.Repeat("a", 64)
	if _, err := d.DockerCreateEndpoint(ctx, plugin.Endpoint{NetworkID: netID, ID: ep, Addrs: []netip.Prefix{request(t, d, plugin.AddressRequest{PoolID: pool})}}); err != nil {
		t.Fatal(err)
	}
	k.AddNetns("/fake/sandbox1")
	j, err := d.DockerJoin(ctx, netID, ep, "/fake/sandbox1")
	if err != nil {
		t.Fatal(err)
	}
	hl, _ := k.HostLink(j.SrcName)
	if row, ok := k.TableRow(enginetest.HostPath, hl.Index); !ok || !row.Moving {
		t.Fatalf("joined endpoint's row %+v (%v): want it moving", row, ok)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		row, ok := k.TableRow(enginetest.HostPath, hl.Index)
		if !ok {
			t.Fatal("the stalled endpoint's row is gone")
		}
		if !row.Moving {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the row is still moving %v after the join (handoffWait %v)", 5*time.Second, handoffWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e, err := eng.Endpoint(ep); err != nil || e.State == "ready" {
		t.Errorf("stalled endpoint %+v %v: want it still handing off", e, err)
	}
}

// TestShimAutoDockerIPAM: -o host_shim=auto on a network whose addresses
// Docker's own IPAM assigns is refused (Docker would give the shim's
// address to a container), naming the way out, and makes no network;
// with mvlan's IPAM, or with an address given, it is made. An -o option
// dockerd defines (com.docker.network.*) is let be; an unknown other one
// is refused.
func TestShimAutoDockerIPAM(t *testing.T) {
	ctx := context.Background()
	k := enginetest.New("eth0", "eth1", "eth2")
	d, eng := newDriver(t, k)
	subnet := netip.MustParsePrefix("172.16.86.0/24")
	gw := netip.MustParseAddr("172.16.86.1")
	err := d.DockerCreateNetwork(ctx, plugin.Network{ID: netID, Options: map[string]string{"parent": "eth0", "name": "dnet", "host_shim": "auto"},
		Pools: []plugin.Pool{{Subnet: subnet, Gateway: gw}}})
	if engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), "host_shim=IP") || !strings.Contains(err.Error(), "--ipam-driver mvlan") {
		t.Fatalf("host_shim=auto with Docker's IPAM: %v; want it refused (invalid), naming host_shim=IP and --ipam-driver mvlan", err)
	}
	if _, err := eng.Network("dnet"); err == nil {
		t.Fatal("the refused network was made")
	}
	id2 := strings.Repeat("b", 64)
	if err := d.DockerCreateNetwork(ctx, plugin.Network{ID: id2, Options: map[string]string{"parent": "eth1", "name": "dnet2", "host_shim": "172.16.87.250",
		"com.docker.network.advertise_addr_nmsgs": "1"}, // dockerd's own: let be
		Pools: []plugin.Pool{{Subnet: netip.MustParsePrefix("172.16.87.0/24")}}}); err != nil {
		t.Fatalf("host_shim=IP with Docker's IPAM (and one of dockerd's own -o): %v", err)
	}
	if err := d.DockerCreateNetwork(ctx, plugin.Network{ID: strings.Repeat("d", 64), Options: map[string]string{"parent": "eth1", "name": "typo", "parnet": "eth1"},
		Pools: []plugin.Pool{{Subnet: netip.MustParsePrefix("172.16.89.0/24")}}}); err == nil || !strings.Contains(err.Error(), "parnet=eth1") {
		t.Fatalf("-o parnet=eth1: %v; want it refused, named", err)
	}
	sub3 := netip.MustParsePrefix("172.16.88.0/24")
	pool, err := d.DockerRequestPool(ctx, plugin.PoolRequest{Pool: sub3})
	if err != nil {
		t.Fatal(err)
	}
	gw3 := request(t, d, plugin.AddressRequest{PoolID: pool, Gateway: true})
	id3 := strings.Repeat("c", 64)
	if err := d.DockerCreateNetwork(ctx, plugin.Network{ID: id3, Options: map[string]string{"parent": "eth2", "name": "dnet3", "host_shim": "auto"},
		Pools: []plugin.Pool{{AddressSpace: plugin.AddressSpace, Subnet: sub3, Gateway: gw3.Addr()}}}); err != nil {
		t.Fatalf("host_shim=auto with mvlan's IPAM: %v", err)
	}
}

// TestWaitEndsWatches: a handoff watch (Docker has not moved the link
// yet) runs until Start's ctx ends; Wait then returns once the watch has
// ended, so the agent closes the engine under no watch.
func TestWaitEndsWatches(t *testing.T) {
	k := enginetest.New("eth0")
	eng, err := k.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := New(eng, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	d.Start(dctx)
	subnet := netip.MustParsePrefix("172.16.87.0/24")
	if err := d.DockerCreateNetwork(ctx, plugin.Network{ID: netID, Options: map[string]string{"parent": "eth0", "name": "dnet"},
		Pools: []plugin.Pool{{Subnet: subnet, Gateway: netip.MustParseAddr("172.16.87.1")}}}); err != nil {
		t.Fatal(err)
	}
	ep := strings.Repeat("b", 64)
	if _, err := d.DockerCreateEndpoint(ctx, plugin.Endpoint{NetworkID: netID, ID: ep, Addrs: []netip.Prefix{netip.MustParsePrefix("172.16.87.5/24")}}); err != nil {
		t.Fatal(err)
	}
	k.AddNetns("/fake/sandbox2")
	if _, err := d.DockerJoin(ctx, netID, ep, "/fake/sandbox2"); err != nil {
		t.Fatal(err)
	}
	watching := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.watches[ep] != nil
	}
	if !watching() {
		t.Fatal("no handoff watch after Join (the test would prove nothing)")
	}
	stop()
	done := make(chan struct{})
	go func() { d.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return 5 s after Start's ctx ended")
	}
	if watching() {
		t.Error("Wait returned with the handoff watch still running")
	}
	ran := make(chan struct{})
	d.spawn(func() { close(ran) }) // a request the stop outlived
	select {
	case <-ran:
		t.Error("a goroutine started after Wait")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestRequestPoolWithoutSubnet: Docker asks for a pool without --subnet
// (an IPv6 one for --ipv6 when only an IPv4 --subnet was given): refused,
// saying which --subnet is missing.
func TestRequestPoolWithoutSubnet(t *testing.T) {
	d, _ := newDriver(t, enginetest.New("eth0"))
	for _, tc := range []struct {
		v6   bool
		want string
	}{{false, "give --subnet (e.g. --subnet=172.16.86.0/24)"}, {true, "--ipv6 needs an IPv6 --subnet"}} {
		_, err := d.DockerRequestPool(context.Background(), plugin.PoolRequest{V6: tc.v6})
		if engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pool without a subnet (IPv6 %v): %v; want %q", tc.v6, err, tc.want)
		}
	}
}

// TestSmallIPRange: an --ip-range of one address is taken at RequestPool
// whatever it is (the gateway is not known yet) and judged at
// CreateNetwork with the gateway Docker gives: beside --gateway elsewhere
// the network is made, and its one address handed out; a range holding
// only the gateway is refused, naming it.
func TestSmallIPRange(t *testing.T) {
	ctx := context.Background()
	d, _ := newDriver(t, enginetest.New("eth0", "eth1"))
	for i, tc := range []struct {
		subnet, rng, gw, parent string
		refused                 string
	}{
		{"10.0.0.0/24", "10.0.0.1/32", "10.0.0.254", "eth0", ""},
		{"10.0.1.0/24", "10.0.1.1/32", "10.0.1.1", "eth1", "ip-range 10.0.1.1/32 has no address to hand out: 10.0.1.1 (the gateway)"},
	} {
		subnet, rng := netip.MustParsePrefix(tc.subnet), netip.MustParsePrefix(tc.rng)
		pool, err := d.DockerRequestPool(ctx, plugin.PoolRequest{AddressSpace: plugin.AddressSpace, Pool: subnet, SubPool: rng})
		if err != nil {
			t.Fatalf("RequestPool %s range %s: %v", subnet, rng, err)
		}
		gw := request(t, d, plugin.AddressRequest{PoolID: pool, Address: netip.MustParseAddr(tc.gw), Gateway: true})
		id := strings.Repeat(string(rune('a'+i)), 64)
		err = d.DockerCreateNetwork(ctx, plugin.Network{ID: id, Options: map[string]string{"parent": tc.parent},
			Pools: []plugin.Pool{{AddressSpace: plugin.AddressSpace, Subnet: subnet, Gateway: gw.Addr()}}})
		if tc.refused != "" {
			if err == nil || !strings.Contains(err.Error(), tc.refused) {
				t.Errorf("range %s, gateway %s: %v; want %q", rng, tc.gw, err, tc.refused)
			}
			continue
		}
		if err != nil {
			t.Fatalf("range %s, gateway %s: %v", rng, tc.gw, err)
		}
		if got := request(t, d, plugin.AddressRequest{PoolID: pool}); got.Addr() != rng.Addr() {
			t.Errorf("address from range %s: %s", rng, got)
		}
	}
}
