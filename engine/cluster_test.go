package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/engine/enginetest"
	"github.com/mvlan/mvlan/internal/nstest"
)

// newClusterRig is a rig whose engine is joined to the etcd at url
// (liveness TTL and grace 2 s, no duplicate address probe).
func newClusterRig(t *testing.T, url string) *rig {
	r := &rig{t: t, k: enginetest.New("eth0"), dir: t.TempDir()}
	r.k.Cluster = &cluster.Config{URL: url, Timeout: 2 * time.Second, TTL: 2 * time.Second, Grace: 2 * time.Second}
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

// runAddr runs endpoint name on net (with ip, if given) and returns its
// first address.
func (r *rig) runAddr(name, net string, ip ...string) netip.Addr {
	r.t.Helper()
	req := api.EndpointCreate{Network: net, Name: name}
	if len(ip) > 0 {
		req.IP = ip[0]
	}
	ep, err := r.e.CreateEndpoint(context.Background(), req)
	if err != nil {
		r.t.Fatalf("run %s: %v", name, err)
	}
	if len(ep.Addrs) == 0 {
		r.t.Fatalf("endpoint %s has no address", name)
	}
	return ep.Addrs[0].Addr()
}

// watch runs the engine's background work (Watch) until the test ends.
func (r *rig) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.e.Watch(ctx)
	}()
	r.t.Cleanup(func() { cancel(); <-done })
}

// rm removes endpoint name.
func (r *rig) rm(name string) {
	r.t.Helper()
	if err := r.e.RemoveEndpoints(context.Background(), name, true); err != nil {
		r.t.Fatalf("rm %s: %v", name, err)
	}
}

// TestClusterRejoin: host2 joins cnet, attaches, and leaves it with
// network rm: what it kept of its blocks (STATE_DIR/cluster/ID) goes
// with it, so that when host1 has taken those blocks and host2 joins
// again, host2 hands out none of host1's addresses. Also when an rm cut
// short left that file behind: the join checks it against etcd first.
func TestClusterRejoin(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1, h2 := newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	ctx := context.Background()
	h1.network("cnet", "scope=cluster", "subnet=10.91.0.0/24", "parent=eth0")
	h1Addrs := map[netip.Addr]string{}
	for round, stale := range []bool{false, true} {
		h2.network("cnet", "scope=cluster", "parent=eth0")
		file := filepath.Join(h2.dir, "cluster", netID(t, h2.e, "cnet"), "pool0.json")
		h2.runAddr("b", "cnet")
		saved, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		h2.rm("b")
		if err := h2.e.RemoveNetwork(ctx, "cnet"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Dir(file)); !os.IsNotExist(err) {
			t.Errorf("round %d: host2 left cnet; its blocks file is still there (%v)", round, err)
		}
		if stale { // an rm cut short after the leave
			if err := errors.Join(os.MkdirAll(filepath.Dir(file), 0o700), os.WriteFile(file, saved, 0o600)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 16 { // host1 takes the block host2 had
			name := fmt.Sprintf("a%d-%d", round, i)
			h1Addrs[h1.runAddr(name, "cnet")] = name
		}
		h2.network("cnet", "scope=cluster", "parent=eth0")
		if b := h2.runAddr("b", "cnet"); h1Addrs[b] != "" {
			t.Fatalf("round %d (file left behind: %v): host2 joined again and handed out %s, host1's %s has it", round, stale, b, h1Addrs[b])
		}
		h2.rm("b")
		if err := h2.e.RemoveNetwork(ctx, "cnet"); err != nil {
			t.Fatal(err)
		}
	}
}

// etcdClient is a plain client of the etcd at url (etcd://HOST:PORT).
func etcdClient(t *testing.T, url string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{strings.TrimPrefix(url, "etcd://")}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestClusterNetworkReplaced: host2 has joined cnet and has an endpoint
// there; it is forgotten as a member, host1 (the last) removes cnet and
// creates it again: a new network of the same name and subnet. host2's
// cnet is then failed (network ls, doctor's drift check) and takes no
// endpoint, naming what to do; once removed there, host2 joins the new
// cnet and hands out none of host1's addresses.
func TestClusterNetworkReplaced(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1, h2 := newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	ctx := context.Background()
	h1.network("cnet", "scope=cluster", "subnet=10.93.0.0/24", "parent=eth0")
	h2.network("cnet", "scope=cluster", "parent=eth0")
	h2.runAddr("b", "cnet")
	if _, err := etcdClient(t, e.URL).Delete(ctx, "/mvlan/v1/members/cnet/"+h2.e.AgentID()); err != nil {
		t.Fatal(err)
	}
	if err := h1.e.RemoveNetwork(ctx, "cnet"); err != nil {
		t.Fatal(err)
	}
	h1.network("cnet", "scope=cluster", "subnet=10.93.0.0/24", "parent=eth0")
	a := h1.runAddr("a", "cnet")
	engine.CheckClusters(ctx, h2.e)
	n, err := h2.e.Network("cnet")
	if err != nil || !strings.Contains(n.Status, "created again") || !strings.Contains(n.Status, "network rm cnet") {
		t.Errorf("host2's cnet: status %q (%v); want it failed, saying to remove it", n.Status, err)
	}
	if _, err := h2.e.CreateEndpoint(ctx, api.EndpointCreate{Network: "cnet", Name: "b2"}); err == nil || !strings.Contains(err.Error(), "network rm cnet") {
		t.Errorf("attach on host2's failed cnet: %v; want refused, saying to remove it", err)
	}
	if drift, err := h2.e.Check(ctx); err != nil || len(drift) != 1 || !strings.HasPrefix(drift[0], "network cnet: ") {
		t.Errorf("host2's drift check: %q %v; want cnet reported", drift, err)
	}
	h2.rm("b")
	if err := h2.e.RemoveNetwork(ctx, "cnet"); err != nil {
		t.Fatal(err)
	}
	h2.network("cnet", "scope=cluster", "parent=eth0")
	if b := h2.runAddr("b", "cnet"); b == a || netID(t, h2.e, "cnet") != netID(t, h1.e, "cnet") {
		t.Errorf("host2 joined cnet again: %s (host1 has %s), ID %s (host1's %s)", b, a, netID(t, h2.e, "cnet"), netID(t, h1.e, "cnet"))
	}
}

// TestClusterClonedStateRefused: an agent started on a copy of another's
// state (a cloned machine: same agent ID, its own install token) does not
// start, naming the ID; the original goes on.
func TestClusterClonedStateRefused(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1 := newClusterRig(t, e.URL)
	h1.network("cnet", "scope=cluster", "subnet=10.94.0.0/24", "parent=eth0")
	clone := t.TempDir()
	for _, f := range []string{"mvlan.db", "agent-id"} {
		b, err := os.ReadFile(filepath.Join(h1.dir, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(clone, f), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	k := enginetest.New("eth0")
	k.Cluster = h1.k.Cluster
	if e2, err := k.Open(clone); !errors.Is(err, cluster.ErrIdentityClash) || !strings.Contains(err.Error(), h1.e.AgentID()) {
		if e2 != nil {
			e2.Close()
		}
		t.Fatalf("an agent on a copy of another's state: %v; want ErrIdentityClash naming agent ID %s", err, h1.e.AgentID())
	}
	h1.runAddr("a", "cnet")
}

// holdings counts what etcd has of host in cluster network name (ID id):
// its membership, blocks and claims.
func holdings(t *testing.T, url, name, id, host string) int {
	t.Helper()
	c := etcdClient(t, url)
	n := 0
	for _, dir := range []string{"/mvlan/v1/blocks/" + id + "/", "/mvlan/v1/claims/" + id + "/", "/mvlan/v1/members/" + name + "/"} {
		r, err := c.Get(context.Background(), dir, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range r.Kvs {
			if string(kv.Value) == host || strings.HasSuffix(string(kv.Key), "/"+host) {
				n++
			}
		}
	}
	return n
}

// TestClusterRmLeavesFirst: network rm of a cluster network leaves etcd
// before it removes the network here. With etcd frozen it is refused,
// the network stays ok and takes endpoints once etcd is back. With etcd
// frozen just after the network's state went (the rm held there), the
// rm went through and etcd has nothing of the host: it left first.
func TestClusterRmLeavesFirst(t *testing.T) {
	e, _, h2, id, host := sharedCnet(t, "10.95.0.0/24")
	ctx := context.Background()
	h2.runAddr("b", "cnet")
	h2.rm("b")
	h2.runAddr("x", "cnet", "10.95.0.200") // a claim
	h2.rm("x")

	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	err := h2.e.RemoveNetwork(ctx, "cnet")
	if err := e.Cont(); err != nil {
		t.Fatal(err)
	}
	n, lerr := h2.e.Network("cnet")
	if err == nil || !strings.Contains(err.Error(), e.URL) || lerr != nil || n.Status != "ok" {
		t.Fatalf("rm with etcd frozen: %v; then cnet %q %v; want refused naming the cluster, cnet ok", err, n.Status, lerr)
	}
	h2.runAddr("c", "cnet")
	h2.rm("c")

	t.Setenv("MVLAN_TEST_HOLDPOINT", "network-rm:after-state")
	t.Setenv("MVLAN_TEST_HOLD", "1500ms")
	done := make(chan error, 1)
	go func() { done <- h2.e.RemoveNetwork(ctx, "cnet") }()
	time.Sleep(500 * time.Millisecond)
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if err := e.Cont(); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("rm held after its state went: %v", err)
	}
	if k := holdings(t, e.URL, "cnet", id, host); k != 0 {
		t.Errorf("host2's rm went through; etcd still has %d of its keys (membership, blocks, claims) of cnet", k)
	}
}

// TestClusterBadIDRefused: a definition in etcd whose ID mvlan did not
// make (a path, a short one) is not joined: create fails naming the ID,
// without a panic or a directory made outside the state dir, and network
// ls does not list it.
func TestClusterBadIDRefused(t *testing.T) {
	e := nstest.StartEtcd(t)
	h := newClusterRig(t, e.URL)
	ctx := context.Background()
	escape := filepath.Join(h.dir, "escaped")
	for name, id := range map[string]string{"evil": "../escaped", "short": "abc"} {
		def := `{"id":"` + id + `","create":{"Name":"` + name + `","Subnets":["10.96.0.0/24"]}}`
		if _, err := etcdClient(t, e.URL).Put(ctx, "/mvlan/v1/networks/"+name, def); err != nil {
			t.Fatal(err)
		}
		_, err := h.e.CreateNetwork(ctx, api.NetworkCreate{Name: name, Scope: "cluster", Options: []string{"parent=eth0"}})
		if err == nil || !strings.Contains(err.Error(), `"`+id+`"`) {
			t.Errorf("join %s, defined in etcd with ID %q: %v; want refused naming the ID", name, id, err)
		}
	}
	if _, err := os.Stat(escape); !os.IsNotExist(err) {
		t.Errorf("a directory was made outside STATE_DIR/cluster: %s (%v)", escape, err)
	}
	if got := h.e.UnjoinedNetworks(ctx); len(got) != 0 {
		t.Errorf("network ls lists %v", got)
	}
}

// TestClusterRmNotJoinedAgain: host2's liveness lease is lost (revoked)
// while its network rm has left etcd and is held before the network goes
// here; the new lease's rejoin must not make host2 a member of cnet again,
// or host1, the last host, could never remove the definition.
func TestClusterRmNotJoinedAgain(t *testing.T) {
	e, h1, h2, id, host := sharedCnet(t, "10.96.0.0/24")
	ctx := context.Background()
	h2.watch() // its liveness and rejoin

	t.Setenv("MVLAN_TEST_HOLDPOINT", "network-rm:after-leave")
	t.Setenv("MVLAN_TEST_HOLD", "3500ms")
	done := make(chan error, 1)
	go func() { done <- h2.e.RemoveNetwork(ctx, "cnet") }()
	time.Sleep(300 * time.Millisecond)
	revokeLiveness(t, e.URL, host)
	if err := <-done; err != nil {
		t.Fatalf("rm: %v", err)
	}
	if k := holdings(t, e.URL, "cnet", id, host); k != 0 {
		t.Fatalf("host2 left cnet and lost its liveness lease meanwhile; etcd has %d of its keys of cnet (joined again)", k)
	}
	lastRemoves(t, h1, e.URL, "cnet")
}

// sharedCnet is cluster network cnet (subnet) defined by host1 and
// joined by host2, with its ID and host2's name in etcd.
func sharedCnet(t *testing.T, subnet string) (e *nstest.Etcd, h1, h2 *rig, id, host string) {
	e = nstest.StartEtcd(t)
	h1, h2 = newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	h1.network("cnet", "scope=cluster", "subnet="+subnet, "parent=eth0")
	h2.network("cnet", "scope=cluster", "parent=eth0")
	return e, h1, h2, netID(t, h2.e, "cnet"), h2.e.AgentID()
}

// lastRemoves removes network name on h, its last host, and checks that
// its definition is gone from etcd at url.
func lastRemoves(t *testing.T, h *rig, url, name string) {
	t.Helper()
	if err := h.e.RemoveNetwork(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	r, err := etcdClient(t, url).Get(context.Background(), "/mvlan/v1/networks/"+name)
	if err != nil || len(r.Kvs) != 0 {
		t.Fatalf("the last host removed %s; etcd still defines it (%d keys, %v)", name, len(r.Kvs), err)
	}
}

// revokeLiveness revokes the liveness lease of host (named by its epoch
// key), as etcd does when the lease expires, and waits until host has
// taken a new one.
func revokeLiveness(t *testing.T, url, host string) {
	t.Helper()
	c := etcdClient(t, url)
	ctx := context.Background()
	lease := func() int64 {
		r, err := c.Get(ctx, "/mvlan/v1/epochs/"+host)
		for deadline := time.Now().Add(5 * time.Second); err == nil && len(r.Kvs) == 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			r, err = c.Get(ctx, "/mvlan/v1/epochs/"+host)
		}
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("epoch key of %s: %d keys, %v", host, len(r.Kvs), err)
		}
		var v struct{ Lease string }
		var id int64
		if err := json.Unmarshal(r.Kvs[0].Value, &v); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscanf(v.Lease, "%x", &id); err != nil {
			t.Fatalf("lease %q of %s: %v", v.Lease, host, err)
		}
		return id
	}
	old := lease()
	if _, err := c.Revoke(ctx, clientv3.LeaseID(old)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); lease() == old; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s took no new liveness lease within 5s", host)
		}
	}
}

// TestClusterStrayMembership: a host whose create of a cluster network
// was refused, or cut short after its join, is not left a member of it;
// otherwise the last host that has the network could never remove its
// definition. A create with other subnets than the definition's is
// refused before the join; a membership etcd has of a network the host
// does not have (as a crash after the join leaves it) goes at its next
// liveness lease.
func TestClusterStrayMembership(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1, h2 := newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	ctx := context.Background()
	h1.network("cnet", "scope=cluster", "subnet=10.97.0.0/24", "parent=eth0")
	id, host := netID(t, h1.e, "cnet"), h2.e.AgentID()
	_, err := h2.e.CreateNetwork(ctx, netRequest("cnet", "scope=cluster", "subnet=10.98.0.0/24", "parent=eth0"))
	if err == nil || !strings.Contains(err.Error(), "10.97.0.0/24") {
		t.Fatalf("create with another subnet: %v; want refused naming the definition's", err)
	}
	if k := holdings(t, e.URL, "cnet", id, host); k != 0 {
		t.Fatalf("host2's create was refused; etcd has %d of its keys of cnet", k)
	}

	c := etcdClient(t, e.URL)
	if _, err := c.Put(ctx, "/mvlan/v1/members/cnet/"+host, id); err != nil { // a create cut short
		t.Fatal(err)
	}
	h2.watch()
	for deadline := time.Now().Add(5 * time.Second); holdings(t, e.URL, "cnet", id, host) != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("host2 is still a member of cnet, which it does not have, 5 s after it took its liveness lease")
		}
	}
	// Again within the lease (a join that timed out yet was applied): it
	// goes at a rejoin of the same lease, six reclaim ticks (6 s) later.
	if _, err := c.Put(ctx, "/mvlan/v1/members/cnet/"+host, id); err != nil {
		t.Fatal(err)
	}
	epoch := h2.e.ClusterEpoch()
	for deadline := time.Now().Add(10 * time.Second); holdings(t, e.URL, "cnet", id, host) != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("host2 is still a member of cnet 10 s after a stray membership appeared within its lease")
		}
	}
	if got := h2.e.ClusterEpoch(); got != epoch {
		t.Errorf("host2 took a new lease (epoch %d, was %d): the stray went with it, not within the lease", got, epoch)
	}
	lastRemoves(t, h1, e.URL, "cnet")
}

// TestClusterJoinWhileLastLeaves: host2's create of cnet finds host1's
// definition, and host1, its last host, removes it before host2 joins
// (the create held there): host2 defines cnet itself, as a create a
// moment later would, instead of failing with "no longer defined".
func TestClusterJoinWhileLastLeaves(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1, h2 := newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	ctx := context.Background()
	h1.network("cnet", "scope=cluster", "subnet=10.99.0.0/24", "parent=eth0")
	old := netID(t, h1.e, "cnet")
	t.Setenv("MVLAN_TEST_HOLDPOINT", "cluster-create:after-define")
	t.Setenv("MVLAN_TEST_HOLD", "1500ms")
	done := make(chan error, 1)
	go func() {
		_, err := h2.e.CreateNetwork(ctx, netRequest("cnet", "scope=cluster", "subnet=10.99.0.0/24", "parent=eth0"))
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	lastRemoves(t, h1, e.URL, "cnet")
	if err := <-done; err != nil {
		t.Fatalf("host2's create, its definition removed by the last host meanwhile: %v; want it defined again", err)
	}
	id := netID(t, h2.e, "cnet")
	r, err := etcdClient(t, e.URL).Get(ctx, "/mvlan/v1/networks/cnet")
	if err != nil || len(r.Kvs) != 1 || id == old || !strings.Contains(string(r.Kvs[0].Value), id) {
		t.Fatalf("etcd defines cnet as %d keys (%v), want one of host2's ID %s (not host1's %s)", len(r.Kvs), err, id, old)
	}
	if n, err := h2.e.Network("cnet"); err != nil || n.Status != "ok" {
		t.Fatalf("host2's cnet: %q %v; want ok", n.Status, err)
	}
}

// TestClusterStrayKeptWhileStateLost: host2's record of cnet is
// quarantined (the state lost it): its membership and blocks stay in
// etcd, as its containers may still use the blocks' addresses.
func TestClusterStrayKeptWhileStateLost(t *testing.T) {
	e, _, h2, id, host := sharedCnet(t, "10.100.0.0/24")
	h2.runAddr("b", "cnet")
	held := holdings(t, e.URL, "cnet", id, host)
	h2.stop()
	st, err := store.Open(h2.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(st.QuarantineNetwork(id, "test: unreadable"), st.Close()); err != nil {
		t.Fatal(err)
	}
	h2.start()
	h2.watch()
	time.Sleep(3 * time.Second) // past its first liveness lease and rejoin
	if k := holdings(t, e.URL, "cnet", id, host); k != held || held < 2 {
		t.Fatalf("host2's record of cnet is quarantined; etcd has %d of its keys of cnet, want the %d (membership, block) it had", k, held)
	}
}

// TestClusterDefinitionChecked: a request is validated before it is
// defined in etcd, where other hosts could join it (a bad name, a bad
// option, a DHCP one's too, one without --subnet that has nothing to
// join: refused, nothing written), and a join must agree with the
// definition on how addresses are handed out and routed (--ipam-driver,
// --internal), else it is refused before it joins.
func TestClusterDefinitionChecked(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1, h2 := newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	ctx := context.Background()
	before, err := etcdClient(t, e.URL).Get(ctx, "/mvlan/v1/networks/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []api.NetworkCreate{
		{Name: "a/b", Subnets: []string{"10.97.0.0/24"}},
		{Name: "badopt", Subnets: []string{"10.97.0.0/24"}, Options: []string{"macvlan_mode=bogus"}},
		{Name: "x/y"},
		{Name: "nodef"}, // no --subnet: it could only join, and there is nothing to join
		{Name: "dhcpbad", IPAMDriver: api.IPAMDHCP, Options: []string{"macvlan_mode=bogus"}},
	} {
		bad.Scope, bad.Options = "cluster", append(bad.Options, "parent=eth0")
		if _, err := h1.e.CreateNetwork(ctx, bad); engine.KindOf(err) != engine.KindInvalid {
			t.Errorf("create %+v: %v; want invalid", bad, err)
		}
	}
	after, err := etcdClient(t, e.URL).Get(ctx, "/mvlan/v1/networks/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.Revision != before.Header.Revision { // not even for a moment
		t.Errorf("etcd's revision went from %d to %d over the refused creates: something was written", before.Header.Revision, after.Header.Revision)
	}
	if _, err := h1.e.CreateNetwork(ctx, api.NetworkCreate{Name: "cnet", Scope: "cluster", Subnets: []string{"10.97.0.0/24"}, Internal: true, Options: []string{"parent=eth0"}}); err != nil {
		t.Fatal(err)
	}
	for _, other := range []api.NetworkCreate{{}, {IPAMDriver: api.IPAMDHCP, Internal: true}} {
		other.Name, other.Scope, other.Options = "cnet", "cluster", []string{"parent=eth0"}
		_, err := h2.e.CreateNetwork(ctx, other)
		if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), "--ipam-driver default and internal=true") {
			t.Errorf("join with --ipam-driver %q internal=%t: %v; want refused naming the definition's", other.IPAMDriver, other.Internal, err)
		}
	}
	if _, err := h2.e.CreateNetwork(ctx, api.NetworkCreate{Name: "cnet", Scope: "cluster", Internal: true, Options: []string{"parent=eth0"}}); err != nil {
		t.Errorf("join with internal=true as defined: %v", err)
	}
}

// TestClusterNeedsParent: a cluster network is not defined, nor joined,
// without -o parent: a host-only member's DAD and reclaim probes would
// hear nothing of the wire. Refused before etcd is changed.
func TestClusterNeedsParent(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1, h2 := newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	ctx := context.Background()
	_, err := h1.e.CreateNetwork(ctx, api.NetworkCreate{Name: "cnet", Scope: api.ScopeCluster, Subnets: []string{"172.16.87.0/24"}})
	if engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), "-o parent=IFNAME is required") {
		t.Fatalf("define without a parent: %v; want invalid, naming -o parent", err)
	}
	for _, dir := range []string{"networks/", "members/"} {
		if r, err := etcdClient(t, e.URL).Get(ctx, "/mvlan/v1/"+dir, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count != 0 {
			t.Fatalf("the refused define left %d keys under %s in etcd (%v)", r.Count, dir, err)
		}
	}
	h1.network("cnet", "scope=cluster", "subnet=172.16.87.0/24", "parent=eth0")
	_, err = h2.e.CreateNetwork(ctx, api.NetworkCreate{Name: "cnet", Scope: api.ScopeCluster})
	if engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), "-o parent=IFNAME is required") {
		t.Fatalf("join without a parent: %v; want invalid, naming -o parent", err)
	}
	if nets, _ := h2.e.Networks(); len(nets) != 0 {
		t.Errorf("the refused join left networks on host2: %+v", nets)
	}
	h2.network("cnet", "scope=cluster", "parent=eth0")
}

// TestClusterJoinOnlyFlags: a host joining without --subnet (to take the
// definition's) may not give what goes with a subnet (a --gateway that
// would be dropped silently), nor an option the network would refuse:
// each is refused before the join, which leaves no membership; a plain
// join then works.
func TestClusterJoinOnlyFlags(t *testing.T) {
	e := nstest.StartEtcd(t)
	h1, h2 := newClusterRig(t, e.URL), newClusterRig(t, e.URL)
	ctx := context.Background()
	h1.network("cnet", "scope=cluster", "subnet=172.16.91.0/24", "parent=eth0")
	for _, tc := range []struct {
		req  api.NetworkCreate
		want string
	}{
		{api.NetworkCreate{Gateways: []string{"172.16.91.9"}, Options: []string{"parent=eth0"}}, "--gateway, --ip-range, --aux-address and --ipv6 go with --subnet"},
		{api.NetworkCreate{Options: []string{"parent=eth0", "bogus=1"}}, `unknown option "bogus=1"`},
	} {
		tc.req.Name, tc.req.Scope = "cnet", api.ScopeCluster
		if _, err := h2.e.CreateNetwork(ctx, tc.req); engine.KindOf(err) != engine.KindInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("join-only %+v: %v; want invalid, %q", tc.req, err, tc.want)
		}
		if r, err := etcdClient(t, e.URL).Get(ctx, "/mvlan/v1/members/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count != 1 {
			t.Fatalf("members after a refused join: %d (%v); want h1's alone", r.Count, err)
		}
	}
	if _, err := h2.e.CreateNetwork(ctx, api.NetworkCreate{Name: "cnet", Scope: api.ScopeCluster, Options: []string{"parent=eth0"}}); err != nil {
		t.Errorf("a plain join: %v", err)
	}
}
