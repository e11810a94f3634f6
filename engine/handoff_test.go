package engine_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/link"
)

// handoff does what the Docker front end does for a container on network
// n with its sandbox at path, up to Docker's move of the link: an address
// reserved, the endpoint handed off. It returns the endpoint's ID, its
// link in the host namespace and its address.
func (r *rig) handoff(n api.Network, path string) (string, link.Info, netip.Prefix) {
	r.t.Helper()
	p, err := r.e.Reserve(n.ID, netip.Addr{}, false, "docker")
	if err != nil {
		r.t.Fatal(err)
	}
	id := store.NewID()
	hl, err := r.e.CreateHandoff(context.Background(), engine.Handoff{ID: id, NetworkID: n.ID, Name: "d1", Netns: path,
		MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0x06, 0x00, 0x09}, Addrs: []netip.Prefix{p}, Owner: "docker"})
	if err != nil {
		r.t.Fatal(err)
	}
	l, ok := r.k.HostLink(hl.Name)
	if !ok {
		r.t.Fatalf("the handed-off link %s is not in the host namespace", hl.Name)
	}
	return id, l, p
}

// netnsLink is the link name in the namespace at path.
func (r *rig) netnsLink(path, name string) link.Info {
	r.t.Helper()
	for _, l := range r.k.NetnsLinks(path) {
		if l.Name == name {
			return l
		}
	}
	r.t.Fatalf("no link %s in %s", name, path)
	return link.Info{}
}

// TestHandoffRenumbered: the sandbox Docker moves a Join's link into has
// a link at the index the link had in the host namespace (a macvlan the
// container made), so the move gives it another. The endpoint is keyed,
// its programs attached, at its own link, never at the container's by
// the index its link had in the host namespace: once as FinishHandoff
// finds it, once as a start does after Docker moved it while the agent
// was down.
func TestHandoffRenumbered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		onStart bool
	}{{"FinishHandoff", false}, {"on start", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "eth0")
			n := r.network("dn", "subnet=10.6.0.0/24", "parent=eth0")
			sandbox := "/run/netns/sandbox-d1"
			r.k.AddNetns(sandbox)
			id, hl, p := r.handoff(n, sandbox)
			trap, err := r.k.AddNetnsLink(sandbox, link.Info{Name: "trap0", Kind: "macvlan", Index: hl.Index, Up: true,
				MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x66}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.onStart {
				r.stop()
			}
			if err := r.k.MoveHostLink(hl.Name, sandbox, "eth0", []netip.Prefix{p}); err != nil {
				t.Fatal(err)
			}
			if tc.onStart {
				r.start()
			} else if !r.e.FinishHandoff(context.Background(), id) {
				t.Fatal("the handoff is not finished with its link up in its sandbox")
			}
			own := r.netnsLink(sandbox, "eth0")
			if own.Index == trap.Index {
				t.Fatalf("premise: the move kept index %d, which the sandbox's trap0 has", own.Index)
			}
			e, err := r.e.Endpoint(id)
			if err != nil || e.State != "ready" || e.Ifindex != own.Index {
				t.Fatalf("endpoint %+v (%v): want ready, keyed at its link eth0 (%d), not at the container's trap0 (%d, its link's index in the host namespace)",
					e, err, own.Index, trap.Index)
			}
			if !r.k.TableHas(sandbox, own.Index) || r.k.TableHas(sandbox, trap.Index) {
				t.Fatalf("datapath rows: eth0's %v, trap0's %v; want eth0's only", r.k.TableHas(sandbox, own.Index), r.k.TableHas(sandbox, trap.Index))
			}
		})
	}
}

// TestHandoffTableFull: FinishHandoff's move of the endpoint's row to its
// keys in the sandbox fails (the table is full): the endpoint stays keyed
// where its row is, in the host namespace, so a later attach moves that
// row and the removal finds it; no row of its MAC is left behind.
func TestHandoffTableFull(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("dn", "subnet=10.6.0.0/24", "parent=eth0")
	sandbox := "/run/netns/sandbox-d1"
	r.k.AddNetns(sandbox)
	id, hl, p := r.handoff(n, sandbox)
	if err := r.k.MoveHostLink(hl.Name, sandbox, "eth0", []netip.Prefix{p}); err != nil {
		t.Fatal(err)
	}
	r.k.FullTable(true)
	r.e.FinishHandoff(context.Background(), id)
	r.k.FullTable(false)
	e, err := r.e.Endpoint(id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.k.HasRow(e.NetnsCookie, e.Ifindex) {
		t.Fatalf("endpoint keyed at (%d, %d), where the datapath has no row: its row stayed under the keys it had", e.NetnsCookie, e.Ifindex)
	}
	if err := r.e.RemoveHandoff(context.Background(), id, "docker", func(netip.Addr) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if known, _ := r.k.Sender(hl.MAC); known {
		t.Fatalf("after the removal the datapath still knows MAC %s: the row under the host keys was left behind", hl.MAC)
	}
}

// TestHandoffMACTaken: an endpoint made (mvlan run --mac) between
// Docker's CreateEndpoint, which checked the MAC, and the handoff, with
// the handoff's MAC, makes the handoff a conflict naming it; the run
// endpoint keeps its MAC, and a later run asking for it is refused.
func TestHandoffMACTaken(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("dn", "subnet=10.6.0.0/24", "parent=eth0")
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x06, 0x00, 0x09}
	if _, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "dn", Name: "c1", MAC: mac.String()}); err != nil {
		t.Fatal(err)
	}
	sandbox := "/run/netns/sandbox-d1"
	r.k.AddNetns(sandbox)
	p, err := r.e.Reserve(n.ID, netip.Addr{}, false, "docker")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.e.CreateHandoff(context.Background(), engine.Handoff{ID: store.NewID(), NetworkID: n.ID, Name: "d1", Netns: sandbox,
		MAC: mac, Addrs: []netip.Prefix{p}, Owner: "docker"})
	if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), mac.String()) || !strings.Contains(err.Error(), "c1") {
		t.Fatalf("handoff with c1's MAC: %v, want a conflict naming the MAC and c1", err)
	}
	_, err = r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "dn", Name: "c2", MAC: mac.String()})
	if engine.KindOf(err) != engine.KindConflict {
		t.Fatalf("run with c1's MAC after the refused handoff: %v, want a conflict (the MAC still guarded)", err)
	}
	if eps := r.endpoints(); len(eps) != 1 {
		t.Fatalf("endpoints %v, want c1 only", eps)
	}
}

// TestHandoffMACTakenOnAnotherNetwork: an endpoint of another network
// made with the handoff's MAC between Docker's CreateEndpoint (which
// checked it) and the handoff makes the handoff a conflict naming the
// MAC: its row would take the other's place in the datapath, which keys
// rows by MAC host-wide. Nothing of the handoff is left.
func TestHandoffMACTakenOnAnotherNetwork(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	n := r.network("dn", "subnet=10.6.0.0/24", "parent=eth0")
	r.network("other", "subnet=10.7.0.0/24", "parent=eth1")
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x06, 0x00, 0x0a}
	p, err := r.e.Reserve(n.ID, netip.Addr{}, false, "docker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "other", Name: "c1", MAC: mac.String()}); err != nil {
		t.Fatal(err)
	}
	sandbox := "/run/netns/sandbox-d1"
	r.k.AddNetns(sandbox)
	_, err = r.e.CreateHandoff(context.Background(), engine.Handoff{ID: store.NewID(), NetworkID: n.ID, Name: "d1", Netns: sandbox,
		MAC: mac, Addrs: []netip.Prefix{p}, Owner: "docker"})
	if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), mac.String()) || !strings.Contains(err.Error(), "another network") {
		t.Fatalf("handoff with other's endpoint's MAC: %v, want a conflict naming the MAC and another network", err)
	}
	if eps := r.endpoints(); len(eps) != 1 {
		t.Fatalf("endpoints %v, want c1 only", eps)
	}
}
