package engine_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
)

// dockerNetwork makes a network as the Docker front end does without
// -o name=: named by the short form of its (Docker) ID.
func (r *rig) dockerNetwork(subnet, parent string) api.Network {
	r.t.Helper()
	id := store.NewID()
	n, err := r.e.CreateNetworkWithID(context.Background(),
		api.NetworkCreate{Name: id[:12], Subnets: []string{subnet}, Options: []string{"parent=" + parent}}, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

// names lists the networks' names, as mvlan network ls orders them.
func (r *rig) names() []string {
	r.t.Helper()
	nets, err := r.e.Networks()
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, n := range nets {
		out = append(out, n.Name+"/"+n.NameFrom)
	}
	return out
}

// TestRenameNetwork: a network named by its Docker ID takes the name
// dockerd has for it; its endpoints, usage and lookups follow, the name
// survives a restart, and what may not be renamed is refused with the
// reason and changes nothing.
func TestRenameNetwork(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	r.network("pub_net", "subnet=172.16.86.0/24", "parent=eth0")
	dn := r.dockerNetwork("10.9.0.0/24", "eth1")
	if dn.NameFrom != api.NameDockerID {
		t.Fatalf("Docker network named %s: name_from %q, want %q", dn.Name, dn.NameFrom, api.NameDockerID)
	}
	r.run("c1", dn.Name)
	before := r.names()
	for _, tc := range []struct {
		name, old, to, from string
		kind                engine.Kind
	}{
		{"bad name", dn.Name, "my net", api.NameDockerd, engine.KindInvalid},
		{"taken", dn.Name, "pub_net", api.NameDockerd, engine.KindConflict},
		{"unknown source", dn.Name, "mynet", "operator", engine.KindInvalid},
		{"stale old name", "other", "mynet", api.NameDockerd, 0},
	} {
		renamed, err := r.e.RenameNetwork(dn.ID, tc.old, tc.to, tc.from)
		if renamed || engine.KindOf(err) != tc.kind || (tc.kind != 0) != (err != nil) {
			t.Errorf("%s: renamed %v, err %v; want no rename, kind %v", tc.name, renamed, err, tc.kind)
		}
		if got := r.names(); !slices.Equal(got, before) {
			t.Errorf("%s: networks %v, want %v unchanged", tc.name, got, before)
		}
	}
	pub, _ := r.e.Network("pub_net")
	if _, err := r.e.RenameNetwork(pub.ID, "pub_net", "other", api.NameDockerd); engine.KindOf(err) != engine.KindInvalid {
		t.Errorf("rename of a network the operator named: %v, want invalid", err)
	}
	if ok, err := r.e.RenameNetwork(dn.ID, dn.Name, "mynet", api.NameDockerd); !ok || err != nil {
		t.Fatalf("rename to mynet: %v %v", ok, err)
	}
	r.checkRenamed(dn, "mynet")
	r.stop()
	r.start()
	r.checkRenamed(dn, "mynet")
	// The old name is free, the new one taken.
	r.network(dn.Name, "subnet=10.9.1.0/24")
	if _, err := r.e.CreateNetwork(context.Background(), api.NetworkCreate{Name: "mynet", Subnets: []string{"10.9.2.0/24"}}); engine.KindOf(err) != engine.KindConflict {
		t.Errorf("create mynet after the rename: %v, want conflict", err)
	}
	r.noDrift()
}

// checkRenamed checks that network dn is called name everywhere.
func (r *rig) checkRenamed(dn api.Network, name string) {
	r.t.Helper()
	n, err := r.e.Network(name)
	if err != nil || n.ID != dn.ID || n.NameFrom != api.NameDockerd || len(n.Endpoints) != 1 || n.Endpoints[0].Network != name {
		r.t.Fatalf("network %s: %+v, %v; want ID %s from dockerd with c1 on it", name, n, err, dn.ID[:12])
	}
	eps, _ := r.e.Endpoints()
	if len(eps) != 1 || eps[0].Network != name {
		r.t.Errorf("endpoints %+v, want c1 on %s", eps, name)
	}
	use, _ := r.e.Usage()
	if !slices.ContainsFunc(use, func(u engine.NetworkUsage) bool { return u.Network == name && u.Endpoints == 1 }) {
		r.t.Errorf("usage %+v has no %s with 1 endpoint", use, name)
	}
	if got := r.names(); slices.Contains(got, dn.Name+"/"+api.NameDockerID) {
		r.t.Errorf("networks %v still list the old name %s", got, dn.Name)
	}
}

// TestRenameNetworkRace renames a network back and forth while others
// list, look up and attach to it (run with -race).
func TestRenameNetworkRace(t *testing.T) {
	r := newRig(t, "eth1")
	dn := r.dockerNetwork("10.9.0.0/24", "eth1")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = r.e.Networks()
				_, _ = r.e.Network(dn.ID)
				_, _ = r.e.Usage()
				_, _ = r.e.Endpoints()
			}
		})
	}
	cur := dn.Name
	for i := range 100 {
		to := []string{"a", "b"}[i%2]
		if ok, err := r.e.RenameNetwork(dn.ID, cur, to, api.NameDockerd); !ok || err != nil {
			t.Fatalf("rename %s to %s: %v %v", cur, to, ok, err)
		}
		cur = to
	}
	close(stop)
	wg.Wait()
	r.noDrift()
}

// TestRenameKeepsShim: the host shim of a network named by Docker is named
// by the network's ID, so a rename leaves it as it is (a short name would
// have given it mvh-NAME, and doctor would have found it missing).
func TestRenameKeepsShim(t *testing.T) {
	r := newRig(t, "eth1")
	ctx := context.Background()
	id := store.NewID()
	n, err := r.e.CreateNetworkWithID(ctx, api.NetworkCreate{Name: id[:12], Subnets: []string{"10.5.0.0/24"},
		Options: []string{"parent=eth1", "host_shim=auto"}}, id)
	if err != nil {
		t.Fatal(err)
	}
	shim := "mvh-" + id[:11]
	if n.HostShim == nil || n.HostShim.Link != shim {
		t.Fatalf("host shim %+v, want %s", n.HostShim, shim)
	}
	if ok, err := r.e.RenameNetwork(id, id[:12], "sn", api.NameDockerd); !ok || err != nil {
		t.Fatalf("rename: %v %v", ok, err)
	}
	r.stop()
	r.start()
	if n, _ = r.e.Network("sn"); n.HostShim == nil || n.HostShim.Link != shim {
		t.Fatalf("after the rename and a restart: host shim %+v, want %s", n.HostShim, shim)
	}
	if _, ok := r.k.HostLink(shim); !ok {
		t.Fatalf("shim link %s is gone", shim)
	}
	r.noDrift()
	if _, err := r.e.UpdateNetwork(ctx, "sn", api.NetworkUpdate{Options: []string{"host_shim=off"}}); err != nil {
		t.Fatalf("host_shim=off after the rename: %v", err)
	}
	if _, ok := r.k.HostLink(shim); ok {
		t.Fatal("off left the shim")
	}
	r.noDrift()
}
