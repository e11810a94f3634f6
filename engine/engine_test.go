package engine_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/engine/enginetest"
	"github.com/mvlan/mvlan/link"
)

// These tests run the engine's decisions on enginetest's in-memory kernel,
// without root. The privileged tests in cmd/mvlan run the same paths on
// the real kernel.

// rig is an engine on a fake kernel, with its state in a directory that
// outlives restarts.
type rig struct {
	t   *testing.T
	k   *enginetest.Kernel
	dir string
	e   *engine.Engine
}

func newRig(t *testing.T, hostLinks ...string) *rig {
	r := &rig{t: t, k: enginetest.New(hostLinks...), dir: t.TempDir()}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

// start opens the engine and runs Start, as the agent does.
func (r *rig) start() {
	r.t.Helper()
	e, err := r.k.Open(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		e.Close()
		r.t.Fatalf("start: %v", err)
	}
	r.e = e
}

func (r *rig) stop() {
	if r.e != nil {
		r.e.Close()
		r.e = nil
	}
}

func (r *rig) network(name string, args ...string) api.Network {
	r.t.Helper()
	n, err := r.e.CreateNetwork(context.Background(), netRequest(name, args...))
	if err != nil {
		r.t.Fatalf("create network %s: %v", name, err)
	}
	return n
}

// netRequest is the create request of network name: args are
// subnet=, scope= or options (parent=, host_shim=, ...).
func netRequest(name string, args ...string) api.NetworkCreate {
	req := api.NetworkCreate{Name: name}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "subnet":
			req.Subnets = append(req.Subnets, v)
		case "scope":
			req.Scope = v
		default:
			req.Options = append(req.Options, a)
		}
	}
	return req
}

func (r *rig) run(name, net string) api.Endpoint {
	r.t.Helper()
	ep, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: net, Name: name})
	if err != nil {
		r.t.Fatalf("run %s: %v", name, err)
	}
	return ep
}

// endpoints maps name to state.
func (r *rig) endpoints() map[string]string {
	r.t.Helper()
	eps, err := r.e.Endpoints()
	if err != nil {
		r.t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range eps {
		m[e.Name] = e.State
	}
	return m
}

func (r *rig) noDrift() {
	r.t.Helper()
	drift, err := r.e.Check(context.Background())
	if err != nil || len(drift) > 0 {
		r.t.Fatalf("drift: %v %q", err, drift)
	}
}

// TestStartMatchesEndpoints: on start, an endpoint whose namespace is
// alive stays; one whose namespace vanished is released (address free
// again); one whose namespace lost its link gets it back.
func TestStartMatchesEndpoints(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	keep, gone, lost := r.run("keep", "pub"), r.run("gone", "pub"), r.run("lost", "pub")
	r.noDrift()
	r.stop()
	r.k.RemoveNetns(gone.Netns)
	r.k.RemoveNetnsLink(lost.Netns, "eth0")
	r.start()
	if got, want := r.endpoints(), map[string]string{"keep": "ready", "lost": "ready"}; !maps.Equal(got, want) {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
	if ls := r.k.NetnsLinks(lost.Netns); len(ls) != 1 || ls[0].Name != "eth0" {
		t.Fatalf("lost link not re-attached: %+v", ls)
	}
	if ls := r.k.NetnsLinks(keep.Netns); len(ls) != 1 {
		t.Fatalf("kept endpoint's links: %+v", ls)
	}
	r.noDrift()
	// The vanished endpoint's address is handed out again.
	if next := r.run("next", "pub"); next.Addrs[0] != gone.Addrs[0] {
		t.Fatalf("next endpoint got %v, want the released %v", next.Addrs, gone.Addrs)
	}
}

// TestStartUndoesHalfMade: an endpoint stored "creating" whose link never
// came is undone on start, and one stored "removing" is finished; a
// "creating" one whose link and addresses are complete is adopted.
func TestStartUndoesHalfMade(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	half, rm, whole := r.run("half", "pub"), r.run("rm", "pub"), r.run("whole", "pub")
	r.stop()
	st, err := store.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		ep    api.Endpoint
		state string
	}{{half, api.EndpointCreating}, {rm, api.EndpointRemoving}, {whole, api.EndpointCreating}} {
		e.ep.State, e.ep.Network = e.state, ""
		if err := st.UpdateEndpoint(e.ep); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	r.k.RemoveNetnsLink(half.Netns, "eth0") // the crash came before the link
	r.start()
	if got, want := r.endpoints(), map[string]string{"whole": "ready"}; !maps.Equal(got, want) {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
	for _, ep := range []api.Endpoint{half, rm} {
		if ls := r.k.NetnsLinks(ep.Netns); len(ls) != 0 {
			t.Errorf("%s left links %+v", ep.Name, ls)
		}
	}
	r.noDrift()
}

// TestStartRemovesStaleLinks: on start, host links marked as this
// agent's that no network needs, and half-made links with its temporary
// prefix, are deleted; the operator's links, another agent's and the
// networks' own parents are kept.
func TestStartRemovesStaleLinks(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	n := r.network("v50", "subnet=172.16.50.0/24", "parent=eth0.50")
	id := r.e.AgentID()
	r.stop()
	r.k.AddHostLink(link.Info{Name: "old", Kind: "vlan", Alias: "mvlan/" + id + "/net/0123456789ab"})
	r.k.AddHostLink(link.Info{Name: link.TempPrefixFor(id) + "x", Kind: "macvlan"})
	r.k.AddHostLink(link.Info{Name: "ep", Kind: "macvlan", Alias: "mvlan/" + id + "/ep/0123456789ab"})
	r.k.AddHostLink(link.Info{Name: "theirs", Kind: "vlan", Alias: "mvlan/otheragent/net/0123456789ab"})
	r.start()
	got := r.k.Deleted()
	slices.Sort(got)
	want := []string{"ep", "old", link.TempPrefixFor(id) + "x"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want %v", got, want)
	}
	for _, name := range []string{"eth0", "eth1", "theirs", n.Parent} {
		if _, ok := r.k.HostLink(name); !ok {
			t.Errorf("%s was deleted", name)
		}
	}
}

// TestStartEnsuresParents: a missing parent mvlan made is made again; a
// missing operator parent, a foreign link in place of mvlan's, and a
// parent that cannot be made again (its lower link is gone) are each
// reported as the network's status, and such a network takes no endpoint.
func TestStartEnsuresParents(t *testing.T) {
	r := newRig(t, "eth0", "eth1", "eth2")
	r.network("remade", "subnet=172.16.50.0/24", "parent=eth0.50")
	r.network("missing", "subnet=172.16.51.0/24", "parent=eth1")
	r.network("foreign", "subnet=172.16.52.0/24", "parent=eth0.52")
	r.network("failed", "subnet=172.16.53.0/24", "parent=eth2.53")
	r.stop()
	for _, name := range []string{"eth0.50", "eth1", "eth0.52", "eth2.53", "eth2"} {
		r.k.RemoveHostLink(name)
	}
	r.k.AddHostLink(link.Info{Name: "eth0.52", Kind: "vlan"})
	r.start()
	nets, err := r.e.Networks()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range nets {
		got[n.Name] = n.Status
	}
	want := map[string]string{
		"remade":  "ok",
		"missing": "parent link eth1 is missing",
		"foreign": "parent eth0.52 exists but was not created by mvlan",
		"failed":  "cannot recreate parent eth2.53: create parent eth2.53: link eth2: not found",
	}
	for name, w := range want {
		if !strings.HasPrefix(got[name], w) {
			t.Errorf("network %s: status %q, want %q...", name, got[name], w)
		}
	}
	if l, ok := r.k.HostLink("eth0.50"); !ok || l.Alias != "mvlan/"+r.e.AgentID()+"/net/"+netID(t, r.e, "remade") {
		t.Errorf("eth0.50 not made again with the network's mark: %+v %v", l, ok)
	}
	// mvlan doctor (the agent's check) says so too.
	drift, err := r.e.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"network missing: parent eth1 is missing", "network foreign cannot take endpoints: parent eth0.52 exists but was not created by mvlan",
		"network failed: parent eth2.53 is missing"} {
		if !slices.ContainsFunc(drift, func(d string) bool { return strings.HasPrefix(d, w) }) {
			t.Errorf("check: no %q in %q", w, drift)
		}
	}
	for _, net := range []string{"missing", "foreign", "failed"} {
		_, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: net, Name: "c-" + net})
		if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), "cannot take endpoints") {
			t.Errorf("endpoint on network %s: %v, want a conflict", net, err)
		}
	}
	r.run("c", "remade")
}

func netID(t *testing.T, e *engine.Engine, name string) string {
	n, err := e.Network(name)
	if err != nil {
		t.Fatal(err)
	}
	return n.ID
}

// TestSerialAfterRestart: on an allocation=serial network, c1 got .2 and
// was removed, c2 got .3; after a restart the next run gets .4, not the
// released .2 (the range start), and .2 comes in the next lap. Likewise
// for an address given back above the held ones (c4's .5 here): the run
// after the next restart gets .6.
func TestSerialAfterRestart(t *testing.T) {
	r := newRig(t, "eth0")
	req := netRequest("ser", "subnet=10.7.0.0/29", "parent=eth0") // .2-.6
	req.IPAMOptions = []string{"allocation=serial"}
	if _, err := r.e.CreateNetwork(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	addrOf := func(ep api.Endpoint) string { return ep.Addrs[0].Addr().String() }
	want := func(name, addr string) {
		t.Helper()
		if got := addrOf(r.run(name, "ser")); got != addr {
			t.Fatalf("run %s got %s, want %s", name, got, addr)
		}
	}
	want("c1", "10.7.0.2")
	r.rm("c1")
	want("c2", "10.7.0.3")
	r.stop()
	r.start()
	want("c3", "10.7.0.4")
	want("c4", "10.7.0.5")
	r.rm("c4")
	r.stop()
	r.start()
	want("c5", "10.7.0.6")
	want("c6", "10.7.0.2") // the next lap
	want("c7", "10.7.0.5")
}

// TestRunIPTaken: run --ip of an address someone holds is a conflict that
// names the holder as what it is (an endpoint, the host shim, a
// reservation) and says what to do instead.
func TestRunIPTaken(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	c1 := r.run("c1", "sn")
	held, err := r.e.Reserve(n.ID, netip.Addr{}, false, "Docker's reservation")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr netip.Addr
		who  string
	}{
		{c1.Addrs[0].Addr(), "endpoint c1"},
		{n.HostShim.Addrs[0], "the host shim"},
		{held.Addr(), "Docker's reservation"},
	} {
		_, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "sn", Name: "c2", IP: tc.addr.String()})
		want := "address " + tc.addr.String() + " is already in use by " + tc.who + "; pick another address or leave --ip out"
		if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), want) {
			t.Errorf("run --ip %s: %v; want a conflict saying %q", tc.addr, err, want)
		}
	}
}

// TestCheckHeldAddresses: the drift check reports an address held with no
// endpoint that has it, and is quiet once it is released.
func TestCheckHeldAddresses(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	r.run("c1", "pub")
	r.noDrift()
	p, err := r.e.Reserve(n.ID, netip.Addr{}, false, "docker")
	if err != nil {
		t.Fatal(err)
	}
	drift, err := r.e.Check(context.Background())
	if err != nil || len(drift) != 1 || !strings.Contains(drift[0], p.Addr().String()+` is held by "docker" but no endpoint has it`) {
		t.Fatalf("drift with a held address: %v %q", err, drift)
	}
	if ok, err := r.e.Release(n.ID, p.Addr()); !ok || err != nil {
		t.Fatalf("release: %v %v", ok, err)
	}
	r.noDrift()
	// An endpoint's address is never released from the outside.
	eps, _ := r.e.Endpoints()
	if ok, _ := r.e.Release(n.ID, eps[0].Addrs[0].Addr()); ok {
		t.Fatal("released an endpoint's address")
	}
	r.noDrift()
}

// TestAttachesDoNotWait: while one endpoint's kernel work takes long,
// another endpoint is attached, and ps, network ls and the metrics'
// usage answer at once (the old agent-wide lock made all of them wait).
func TestAttachesDoNotWait(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	gate := r.k.Gate(link.NetnsPath("slow"))
	slow := make(chan error, 1)
	go func() {
		_, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Name: "slow"})
		slow <- err
	}()
	entered(t, gate, slow)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run("fast", "pub")
		if _, err := r.e.Usage(); err != nil {
			t.Error(err)
		}
		if _, err := r.e.Networks(); err != nil {
			t.Error(err)
		}
		if got := r.endpoints(); got["slow"] != "creating" || got["fast"] != "ready" {
			t.Errorf("ps during a slow attach: %v", got)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("requests waited for another endpoint's kernel work")
	}
	gate.Open()
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if got := r.endpoints(); got["slow"] != "ready" {
		t.Fatalf("slow endpoint: %v", got)
	}
	r.noDrift()
}

// TestCNINamesInParallel: two runtimes' attaches with one pod name (pods
// of one name in two Kubernetes namespaces) at once: the one that picked
// the name first but is admitted second (held between the two) gets the
// runtime's next candidate, not a name clash.
func TestCNINamesInParallel(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	attach := func(cid string) api.EndpointCreate {
		path := "/run/netns/cni-" + cid
		r.k.AddNetns(path)
		return api.EndpointCreate{Network: "pub", Netns: path, Name: "web-0", AltNames: []string{"web-0-" + cid},
			CNI: &api.CNIAttachment{Network: "mvnet", ContainerID: cid, IfName: "eth0"}}
	}
	held, other := attach("aaaaaaaa"), attach("bbbbbbbb")
	gate := r.k.GateCheck(held.Netns)
	res := make(chan error, 1)
	var first api.Endpoint
	go func() {
		var err error
		first, err = r.e.CreateEndpoint(context.Background(), held)
		res <- err
	}()
	entered(t, gate, res)
	second, err := r.e.CreateEndpoint(context.Background(), other)
	gate.Open()
	if err := <-res; err != nil {
		t.Fatalf("the attach held after naming: %v", err)
	}
	if err != nil {
		t.Fatalf("the attach admitted meanwhile: %v", err)
	}
	if first.Name != "web-0-aaaaaaaa" || second.Name != "web-0" {
		t.Errorf("names %q (held) and %q; want web-0-aaaaaaaa and web-0", first.Name, second.Name)
	}
	r.noDrift()
}

// TestCNIAddFromAnotherNetns: a runtime's ADD of an identity whose
// endpoint is in another namespace (the DEL of the old one never came)
// replaces that endpoint: the old link goes, and the new endpoint gets
// its name and may ask for its address and MAC. So does one from a new
// namespace at another path with the old one's inode number (the kernel
// gives the number of a namespace that is gone again), before the sweep;
// its link waits for the parent to let go of the MAC of the old one,
// which goes with its namespace, in the background. A repeated ADD from
// the same namespace is answered with the endpoint it made.
func TestCNIAddFromAnotherNetns(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	at := &api.CNIAttachment{Network: "mvnet", ContainerID: "c0ffee00", IfName: "eth0"}
	add := func(path, ip, mac string) api.Endpoint {
		t.Helper()
		e, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Netns: path, Name: "web-0",
			AltNames: []string{"web-0-c0ffee00"}, IP: ip, MAC: mac, CNI: at})
		if err != nil {
			t.Fatalf("ADD from %s: %v", path, err)
		}
		return e
	}
	one := func(e api.Endpoint, path string) {
		t.Helper()
		if e.Netns != path || e.Name != "web-0" || e.State != "ready" {
			t.Errorf("endpoint %+v; want web-0, ready, in %s", e, path)
		}
		if got := r.endpoints(); len(got) != 1 {
			t.Errorf("endpoints %v; want only web-0", got)
		}
		if l := r.k.NetnsLinks(path); len(l) != 1 {
			t.Errorf("links in %s: %+v; want the endpoint's", path, l)
		}
		r.noDrift()
	}
	old, next, renewed := "/run/netns/cni-1", "/run/netns/cni-2", "/run/netns/cni-3"
	r.k.AddNetns(old)
	first := add(old, "", "")
	if again := add(old, "", ""); again.ID != first.ID {
		t.Errorf("repeated ADD from the same namespace: endpoint %s; want the first, %s", again.ID, first.ID)
	}
	one(first, old)
	r.k.AddNetns(next)
	second := add(next, first.Addrs[0].Addr().String(), first.MAC)
	if second.ID == first.ID || !slices.Equal(second.Addrs, first.Addrs) || second.MAC != first.MAC {
		t.Errorf("ADD from another namespace with the old address and MAC: %+v; want a new endpoint with %v %s", second, first.Addrs, first.MAC)
	}
	one(second, next)
	if l := r.k.NetnsLinks(old); len(l) != 0 {
		t.Errorf("links left in the old namespace: %+v", l)
	}
	// The old link's MAC stays on the parent a while (its namespace being
	// destroyed): the new one, with that MAC again (its name's), waits.
	r.k.RenewNetns(next, renewed, 100*time.Millisecond)
	third := add(renewed, "", "")
	if third.ID == second.ID {
		t.Errorf("ADD from a new namespace with the old one's inode number was answered with the old endpoint %s", second.ID)
	}
	if third.MAC != second.MAC {
		t.Errorf("ADD from a new namespace: MAC %s; want %s, its name's, again", third.MAC, second.MAC)
	}
	one(third, renewed)
}

// entered waits until the attach whose result comes on res reached
// gate; one that ends first fails t with its error rather than leaving
// the test waiting forever.
func entered(t *testing.T, gate *enginetest.Gate, res <-chan error) {
	t.Helper()
	select {
	case <-gate.Entered:
	case err := <-res:
		t.Fatalf("the attach ended before it reached the gate: %v", err)
	}
}

// failAfterName attaches req (a container of its own, on a network on
// eth0) and has its link fail once its namespace is named: the parent
// goes while the link is held. It returns the attach's error, after
// checking that neither the name nor the endpoint is left, and puts the
// parent back.
func (r *rig) failAfterName(req api.EndpointCreate) error {
	r.t.Helper()
	path := link.NetnsPath(req.Name)
	gate := r.k.Gate(path)
	res := make(chan error, 1)
	go func() {
		_, err := r.e.CreateEndpoint(context.Background(), req)
		res <- err
	}()
	entered(r.t, gate, res)
	for deadline := time.Now().Add(5 * time.Second); !r.k.HasNetns(path); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			r.t.Fatal("the namespace got no name while its link was held")
		}
	}
	parent, _ := r.k.HostLink("eth0")
	r.k.RemoveHostLink("eth0") // the link fails: no parent
	gate.Open()
	err := <-res
	if r.k.HasNetns(path) {
		r.t.Errorf("%s is left after the failed attach", path)
	}
	if got := r.endpoints(); len(got) != 0 {
		r.t.Errorf("endpoints after the failed attach: %v", got)
	}
	r.k.AddHostLink(parent)
	return err
}

// TestFailedLinkDropsTheName: a container's namespace is named while its
// link is made; when the link fails after the name is there, the name
// goes with the rest, and the name and address are free again.
func TestFailedLinkDropsTheName(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	path := link.NetnsPath("c1")
	if err := r.failAfterName(api.EndpointCreate{Network: "pub", Name: "c1", IP: "172.16.86.10"}); err == nil {
		t.Fatal("attach without its parent succeeded")
	}
	e, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Name: "c1", IP: "172.16.86.10"})
	if err != nil {
		t.Fatalf("the name and address are not free again: %v", err)
	}
	if e.Netns != path {
		t.Errorf("netns %s, want %s", e.Netns, path)
	}
	r.noDrift()
}

// TestFailedLinkStuckName: as above, but the name cannot be taken down
// at once (a busy mount): the endpoint keeps it, and the undo that
// follows removes it; nothing is left and the name is free again.
func TestFailedLinkStuckName(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	r.k.StickNetns("c1", 1)
	if err := r.failAfterName(api.EndpointCreate{Network: "pub", Name: "c1"}); err == nil || !errors.Is(err, unix.EBUSY) {
		t.Fatalf("attach error %v; want the link's and the stuck name's (EBUSY)", err)
	}
	r.run("c1", "pub")
	r.noDrift()
}

// TestRemovalStuckName: a removal whose namespace name cannot be taken
// down (a busy mount) fails and keeps the record for the next try, but
// the link is gone, and so are the datapath's records of its programs
// (no pins of a gone link until the next start).
func TestRemovalStuckName(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	r.run("c1", "pub")
	r.k.StickNetns("c1", 2) // rm tries the name first, then with the link
	if err := r.e.RemoveEndpoints(context.Background(), "c1", true); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("rm error %v; want the stuck name's (EBUSY)", err)
	}
	if n := r.k.Forgets(); n != 1 {
		t.Fatalf("c1's programs forgotten %d times by its removal; want once, though its name stayed", n)
	}
}

// TestConcurrentAttaches: 50 endpoints attached at once get distinct
// addresses and MACs.
func TestConcurrentAttaches(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	errs := make(chan error, 50)
	for i := range 50 {
		go func() {
			_, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Name: "c" + strconv.Itoa(i)})
			errs <- err
		}()
	}
	for range 50 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	eps, _ := r.e.Endpoints()
	addrs, macs := map[netip.Prefix]bool{}, map[string]bool{}
	for _, e := range eps {
		addrs[e.Addrs[0]], macs[e.MAC] = true, true
	}
	if len(eps) != 50 || len(addrs) != 50 || len(macs) != 50 {
		t.Fatalf("%d endpoints, %d addresses, %d MACs; want 50 of each", len(eps), len(addrs), len(macs))
	}
	r.noDrift()
}

// TestHostShimLifecycle: a network with host_shim=auto gets a marked shim
// holding the pool's first address, and one route per endpoint address;
// a shim deleted behind the engine's back is made again on start; off
// removes it and frees its address; no drift at any point.
func TestHostShimLifecycle(t *testing.T) {
	r := newRig(t, "eth0")
	ctx := context.Background()
	n, err := r.e.CreateNetwork(ctx, api.NetworkCreate{Name: "sn", Subnets: []string{"10.5.0.0/24"},
		Options: []string{"parent=eth0", "host_shim=auto"}})
	if err != nil {
		t.Fatal(err)
	}
	if n.HostShim == nil || n.HostShim.Link != "mvh-sn" || !slices.Equal(n.HostShim.Addrs, []netip.Addr{netip.MustParseAddr("10.5.0.2")}) {
		t.Fatalf("host shim %+v; want mvh-sn with 10.5.0.2", n.HostShim)
	}
	if l, ok := r.k.HostLink("mvh-sn"); !ok || l.Alias != "mvlan/"+r.e.AgentID()+"/shim/"+n.ID {
		t.Fatalf("shim link %+v, %v; want it marked as network %s's shim", l, ok, n.ID)
	}
	c1 := r.run("c1", "sn")
	if got := r.k.Routes("mvh-sn"); !slices.Equal(got, []netip.Addr{c1.Addrs[0].Addr()}) {
		t.Fatalf("routes %v, want c1's %v", got, c1.Addrs)
	}
	r.noDrift()
	r.stop()
	r.k.RemoveHostLink("mvh-sn")
	r.start()
	if _, ok := r.k.HostLink("mvh-sn"); !ok {
		t.Fatal("the deleted shim was not made again on start")
	}
	if got := r.k.Routes("mvh-sn"); !slices.Equal(got, []netip.Addr{c1.Addrs[0].Addr()}) {
		t.Fatalf("after start: routes %v, want c1's", got)
	}
	r.noDrift()
	if _, err := r.e.UpdateNetwork(ctx, "sn", api.NetworkUpdate{Options: []string{"host_shim=off"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.k.HostLink("mvh-sn"); ok {
		t.Fatal("off left the shim")
	}
	r.noDrift()
	if c2 := r.run("c2", "sn"); c2.Addrs[0].Addr() != netip.MustParseAddr("10.5.0.2") {
		t.Fatalf("c2 got %v; want the shim's freed 10.5.0.2", c2.Addrs)
	}
}

// TestHostShimRoutesPerEndpoint: an attach adds the host routes to its
// own addresses and a removal deletes them, each without a sync of the
// whole shim (no O(N) work per request); an address handed out again
// gets its route back; start still syncs them all.
func TestHostShimRoutesPerEndpoint(t *testing.T) {
	r := newRig(t, "eth0")
	ctx := context.Background()
	r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	syncs := r.k.RouteSyncs()
	var want []netip.Addr
	for _, name := range []string{"c1", "c2", "c3"} {
		want = append(want, r.run(name, "sn").Addrs[0].Addr())
	}
	if got := r.k.Routes("mvh-sn"); !slices.Equal(got, want) {
		t.Fatalf("routes %v, want the endpoints' %v", got, want)
	}
	if err := r.e.RemoveEndpoints(ctx, "c2", true); err != nil {
		t.Fatal(err)
	}
	r.noDrift() // waits for the removal
	if got, w := r.k.Routes("mvh-sn"), []netip.Addr{want[0], want[2]}; !slices.Equal(got, w) {
		t.Fatalf("after rm c2: routes %v, want %v", got, w)
	}
	if n := r.k.RouteSyncs(); n != syncs {
		t.Fatalf("3 attaches and a removal synced the whole shim's routes %d times; want none", n-syncs)
	}
	c4, err := r.e.CreateEndpoint(ctx, api.EndpointCreate{Network: "sn", Name: "c4", IP: want[1].String()})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.k.Routes("mvh-sn"); !slices.Equal(got, want) || c4.Addrs[0].Addr() != want[1] {
		t.Fatalf("c4 on c2's address %v: routes %v, want %v", c4.Addrs, got, want)
	}
	r.noDrift()
	r.stop()
	r.start()
	if got := r.k.Routes("mvh-sn"); !slices.Equal(got, want) || r.k.RouteSyncs() == syncs {
		t.Fatalf("after start: routes %v (synced: %v), want %v", got, r.k.RouteSyncs() > syncs, want)
	}
}

// TestHostShimRoutesDocker: a Docker endpoint (a handoff) on a host shim
// network gets the route to its address when ready (and its address is
// announced) and loses it when removed, each without a sync of the whole
// shim.
func TestHostShimRoutesDocker(t *testing.T) {
	r := newRig(t, "eth0")
	ctx := context.Background()
	n := r.network("sn", "subnet=10.5.0.0/24", "parent=eth0", "host_shim=auto")
	syncs := r.k.RouteSyncs()
	p, err := r.e.Reserve(n.ID, netip.Addr{}, false, "docker")
	if err != nil {
		t.Fatal(err)
	}
	path := "/run/netns/sandbox-d1"
	r.k.AddNetns(path)
	id := store.NewID()
	hl, err := r.e.CreateHandoff(ctx, engine.Handoff{ID: id, NetworkID: n.ID, Name: "d1", Netns: path,
		MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0x05, 0x00, 0x09}, Addrs: []netip.Prefix{p}, Owner: "docker"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.k.MoveHostLink(hl.Name, path, "eth0", []netip.Prefix{p}); err != nil {
		t.Fatal(err)
	}
	if !r.e.FinishHandoff(ctx, id) {
		t.Fatal("the handoff is not finished with its link up in its namespace")
	}
	if got := r.k.Announced(); !slices.Equal(got, []netip.Prefix{p}) {
		t.Errorf("announced %v once ready; want d1's %v", got, p)
	}
	if got := r.k.Routes("mvh-sn"); !slices.Equal(got, []netip.Addr{p.Addr()}) {
		t.Fatalf("routes %v, want d1's %v", got, p.Addr())
	}
	if err := r.e.RemoveHandoff(ctx, id, "docker", func(netip.Addr) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if got := r.k.Routes("mvh-sn"); len(got) != 0 {
		t.Fatalf("after the Docker endpoint's removal: routes %v, want none", got)
	}
	if n := r.k.RouteSyncs(); n != syncs {
		t.Fatalf("a Docker endpoint's join and removal synced the whole shim's routes %d times; want none", n-syncs)
	}
}

// TestDriftCountsDoNotWait: the metrics' drift counts come from a check
// in the background. Only the first call waits for one; once the counts
// are DriftCountAge old, a call answers with them at once and starts one
// check (not one per call), whose counts the calls after it see.
func TestDriftCountsDoNotWait(t *testing.T) {
	r := &rig{t: t, k: enginetest.New("eth0"), dir: t.TempDir()}
	gate, started := make(chan struct{}, 4), make(chan struct{}, 4)
	r.k.Background = func(fn func()) {
		started <- struct{}{}
		<-gate
		fn()
	}
	r.start()
	t.Cleanup(r.stop)
	t.Cleanup(func() { close(gate) }) // before stop: a check may be held
	n := r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	r.run("c1", "pub")
	counts := func() <-chan map[engine.DriftKind]int {
		out := make(chan map[engine.DriftKind]int, 1)
		go func() {
			c, err := r.e.DriftCounts(context.Background())
			if err != nil {
				t.Error(err)
			}
			out <- c
		}()
		return out
	}
	want := func(got map[engine.DriftKind]int, ipam int) {
		t.Helper()
		if len(got) != len(engine.DriftKinds) {
			t.Fatalf("drift counts %v, want every kind", got)
		}
		for _, k := range engine.DriftKinds {
			if w := map[engine.DriftKind]int{engine.DriftIPAM: ipam}[k]; got[k] != w {
				t.Fatalf("drift counts %v, want ipam %d and 0 of every other kind", got, ipam)
			}
		}
	}
	first := counts()
	<-started
	select {
	case c := <-first:
		t.Fatalf("the first call answered %v before its check ran", c)
	case <-time.After(50 * time.Millisecond):
	}
	// A caller with a deadline (a scrape) does not wait past it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if c, err := r.e.DriftCounts(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DriftCounts with a deadline, its check held: %v %v, want context.DeadlineExceeded", c, err)
	}
	gate <- struct{}{}
	want(<-first, 0)

	if _, err := r.e.Reserve(n.ID, netip.Addr{}, false, "docker"); err != nil { // one ipam finding
		t.Fatal(err)
	}
	engine.AgeDriftCounts(r.e)
	for range 3 { // the old counts, at once, while the new check waits
		select {
		case c := <-counts():
			want(c, 0)
		case <-time.After(5 * time.Second):
			t.Fatal("DriftCounts waited for a check while it had counts")
		}
	}
	<-started
	select {
	case <-started:
		t.Fatal("a second check started while one ran")
	case <-time.After(50 * time.Millisecond):
	}
	gate <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for c := <-counts(); c[engine.DriftIPAM] == 0; c = <-counts() {
		if time.Now().After(deadline) {
			t.Fatalf("drift counts %v 5 s after the check was let go", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want(<-counts(), 1)
}

// TestLinkWatchResubscribes: when the subscription to link events fails
// (the kernel dropped events: ENOBUFS), the engine subscribes again and
// checks the parents at once, as events may be lost: a parent removed
// meanwhile is reported without any event of its own.
func TestLinkWatchResubscribes(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		r.e.Watch(ctx)
	}()
	defer func() { cancel(); <-watching }()
	status := func() string {
		n, err := r.e.Network("pub")
		if err != nil {
			t.Fatal(err)
		}
		return n.Status
	}
	for deadline := time.Now().Add(2 * time.Second); r.k.LinkWatches() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	r.k.RemoveHostLink("eth0") // no event: the fake kernel sends none
	r.k.BreakLinkWatch(errors.New("no buffer space available"))
	deadline := time.Now().Add(3 * time.Second)
	for (r.k.LinkWatches() < 2 || !strings.HasPrefix(status(), "parent link eth0 is missing")) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if w, s := r.k.LinkWatches(), status(); w < 2 || !strings.HasPrefix(s, "parent link eth0 is missing") {
		t.Fatalf("after the watch failed: %d subscriptions, status %q; want a second one and the missing parent reported", w, s)
	}
}

// TestCNIAddAfterSweep: the runtime deletes a pod's namespace without a
// DEL and the sweep releases its endpoint while the kernel still destroys
// the namespace, whose link keeps the endpoint's MAC on the parent a
// while. The runtime's ADD for the new namespace, with that MAC again
// (the pod's name's), waits for the parent to let go of it rather than
// failing.
func TestCNIAddAfterSweep(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	at := &api.CNIAttachment{Network: "mvnet", ContainerID: "c0ffee00", IfName: "eth0"}
	add := func(path string) (api.Endpoint, error) {
		return r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Netns: path, Name: "web-0", CNI: at})
	}
	old, next := "/run/netns/cni-1", "/run/netns/cni-2"
	r.k.AddNetns(old)
	first, err := add(old)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() { // the sweep runs in Watch
		defer close(watching)
		r.e.Watch(ctx)
	}()
	defer func() { cancel(); <-watching }()
	r.k.RenewNetns(old, next, 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for len(r.endpoints()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := r.endpoints(); len(got) > 0 {
		t.Fatalf("the sweep did not release the endpoint of the gone namespace: %v", got)
	}
	second, err := add(next)
	if err != nil {
		t.Fatalf("ADD from the new namespace right after the sweep: %v", err)
	}
	if second.MAC != first.MAC {
		t.Errorf("MAC %s; want %s, the pod name's, again", second.MAC, first.MAC)
	}
}

// TestParentRowOfTrunk: a network on eth0, with another network on
// eth0.50 (eth0 its trunk), moves its parents row when eth0 is made again
// (eth0.50's record still naming the old eth0), and when removed takes
// the row with it: eth0 stays attached as the trunk, but its untagged
// frames are no network's.
// The next network, given the removed one's number, has its row on its
// own parent only.
func TestParentRowOfTrunk(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	r.network("native", "subnet=172.16.70.0/24", "parent=eth0")
	r.network("v50", "subnet=172.16.50.0/24", "parent=eth0.50")
	index := func(name string) int {
		l, ok := r.k.HostLink(name)
		if !ok {
			t.Fatalf("no link %s", name)
		}
		return l.Index
	}
	rows := func() map[int]uint32 {
		got := map[int]uint32{}
		for _, p := range r.k.ParentRows() {
			got[p.Ifindex] = p.NetworkID
		}
		return got
	}
	if got := rows(); len(got) != 2 || got[index("eth0")] == 0 || got[index("eth0.50")] == 0 {
		t.Fatalf("parents rows %v, want eth0's (%d) and eth0.50's (%d)", got, index("eth0"), index("eth0.50"))
	}
	// eth0 made again (a new ifindex) while eth0.50 still names the old
	// one as its lower link: native's row moves, none stays at the old.
	old := index("eth0")
	r.k.RemoveHostLink("eth0")
	r.k.AddHostLink(link.Info{Name: "eth0", Kind: "device", Up: true})
	engine.RefreshParents(context.Background(), r.e)
	if got := rows(); len(got) != 2 || got[index("eth0")] == 0 || got[old] != 0 {
		t.Fatalf("parents rows %v after eth0 was made again (ifindex %d, was %d); want eth0's and eth0.50's only", got, index("eth0"), old)
	}
	native := rows()[index("eth0")]
	if err := r.e.RemoveNetwork(context.Background(), "native"); err != nil {
		t.Fatal(err)
	}
	r.network("next", "subnet=172.16.71.0/24", "parent=eth1")
	got := rows()
	if _, ok := got[index("eth0")]; ok || len(got) != 2 || got[index("eth1")] != native {
		t.Errorf("parents rows %v after native (%d) went and next came on eth1 (%d); want eth0.50's and eth1's only, eth1 with number %d",
			got, index("eth0"), index("eth1"), native)
	}
}

// TestRetireParentOnRm: removing a network whose parent stays another
// network's trunk retires its row (its untagged frames stay in the
// link's per-VLAN counters: loader's TestRetireParent); one whose parent
// is no trunk deletes it, counters and all.
func TestRetireParentOnRm(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	r.network("native", "subnet=172.16.70.0/24", "parent=eth0")
	r.network("v50", "subnet=172.16.50.0/24", "parent=eth0.50")
	r.network("other", "subnet=172.16.71.0/24", "parent=eth1")
	eth0, _ := r.k.HostLink("eth0")
	for _, name := range []string{"native", "other"} {
		if err := r.e.RemoveNetwork(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.k.Retired(); !slices.Equal(got, []int{eth0.Index}) {
		t.Errorf("retired parents %v, want eth0's (%d) only", got, eth0.Index)
	}
	// The same for a network whose record went while the agent was down
	// (an rm cut short after it): the next start retires its row.
	r.network("native2", "subnet=172.16.72.0/24", "parent=eth0")
	n, err := r.e.Network("native2")
	if err != nil {
		t.Fatal(err)
	}
	r.stop()
	st, err := store.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(st.DeleteNetwork(n.ID), st.Close()); err != nil {
		t.Fatal(err)
	}
	r.start()
	if got := r.k.Retired(); !slices.Equal(got, []int{eth0.Index, eth0.Index}) {
		t.Errorf("retired parents %v after a start without native2's record, want eth0's (%d) twice", got, eth0.Index)
	}
}
