package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestStartQuarantinesRefusedAddresses: an endpoint record whose address
// the network's space refuses (the gateway, one outside the subnets,
// another endpoint's) is quarantined on start, its link left alone; the
// agent starts and the other endpoints keep their addresses. Neither
// theirs nor the quarantined record's are handed out again, this start or
// the next, until its container is gone: then the next start drops the
// record, and the check finds no drift. On a network of the host's pools
// and on a cluster network (embedded etcd), whose space is tried without
// giving back its claims.
func TestStartQuarantinesRefusedAddresses(t *testing.T) {
	for _, scope := range []string{"local", "cluster"} {
		for _, tc := range []struct {
			what string
			addr func(other netip.Prefix) netip.Prefix
		}{
			{"the gateway", func(netip.Prefix) netip.Prefix { return netip.MustParsePrefix("172.16.86.1/24") }},
			{"outside the subnet", func(netip.Prefix) netip.Prefix { return netip.MustParsePrefix("203.0.113.7/24") }},
			{"another's", func(other netip.Prefix) netip.Prefix { return other }},
		} {
			t.Run(scope+"/"+tc.what, func(t *testing.T) {
				r, net := quarantineRig(t, scope)
				startWithRefused(t, r, net, tc.addr)
			})
		}
	}
}

// quarantineRig is a rig with a network on 172.16.86.0/24 of the scope.
func quarantineRig(t *testing.T, scope string) (*rig, string) {
	if scope == "cluster" {
		_, h1, _, _, _ := sharedCnet(t, "172.16.86.0/24")
		return h1, "cnet"
	}
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	return r, "pub"
}

// startWithRefused is TestStartQuarantinesRefusedAddresses on r's network
// net, the refused address being addr of the other endpoint's.
func startWithRefused(t *testing.T, r *rig, net string, addr func(other netip.Prefix) netip.Prefix) {
	good, bad := quarantineOne(t, r, net, addr)
	if got := r.endpoints(); len(got) != 1 || got["good"] != "ready" {
		t.Fatalf("endpoints after start: %v; want good alone, bad quarantined", got)
	}
	if ls := r.k.NetnsLinks(bad.Netns); len(ls) != 1 {
		t.Errorf("links of the quarantined endpoint: %+v; want its eth0 kept", ls)
	}
	// bad's container may still use its addresses: none is handed
	// out again, this start or the next.
	for i, name := range []string{"next", "after a restart"} {
		if i == 1 {
			r.stop()
			r.start()
		}
		next := r.run(fmt.Sprintf("next%d", i), net)
		if slices.Contains(good.Addrs, next.Addrs[0]) || slices.Contains(bad.Addrs, next.Addrs[0]) {
			t.Errorf("%s: a new endpoint got %v: good's %v or the quarantined record's %v", name, next.Addrs[0], good.Addrs, bad.Addrs)
		}
	}
	drift, err := r.e.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 1 || !strings.Contains(drift[0], bad.ID+" is quarantined") {
		t.Errorf("drift: %q; want bad's quarantine alone", drift)
	}
	// Once its container is gone, the next start lets them go.
	r.k.RemoveNetns(bad.Netns)
	r.stop()
	r.start()
	if next := r.run("next2", net); !slices.Contains(bad.Addrs, next.Addrs[0]) {
		t.Errorf("with the quarantined record's container gone, a new endpoint got %v; want %v, its address free again", next.Addrs[0], bad.Addrs[0])
	}
	// Nor is anything left to report: the record went with it.
	r.noDrift()
}

// quarantineOne runs endpoints good and bad on r's network net and
// restarts r with bad's record refused (addr of good's address added to
// it): bad is quarantined.
func quarantineOne(t *testing.T, r *rig, net string, addr func(other netip.Prefix) netip.Prefix) (good, bad api.Endpoint) {
	t.Helper()
	good, bad = r.run("good", net), r.run("bad", net)
	r.stop()
	st, err := store.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	bad.Addrs = append(bad.Addrs, addr(good.Addrs[0]))
	if err := st.UpdateEndpoint(bad); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r.start()
	return good, bad
}

// TestRemoveNetworkQuarantineHeld: a network whose addresses a
// quarantined record holds (its container may still use them) is not
// removed, also with no endpoint left: made again on the parent, or its
// cluster blocks given back to etcd, it would hand them out again. Once
// the container is gone, the next start drops the record and the
// network is removed.
func TestRemoveNetworkQuarantineHeld(t *testing.T) {
	for _, scope := range []string{"local", "cluster"} {
		t.Run(scope, func(t *testing.T) {
			r, net := quarantineRig(t, scope)
			gateway := func(netip.Prefix) netip.Prefix { return netip.MustParsePrefix("172.16.86.1/24") }
			good, bad := quarantineOne(t, r, net, gateway)
			r.rm(good.Name)
			ctx := context.Background()
			err := r.e.RemoveNetwork(ctx, net)
			if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), bad.Addrs[0].Addr().String()+" (a quarantined record of endpoint bad)") {
				t.Fatalf("network rm with bad quarantined, its container there: %v; want a conflict naming %v", err, bad.Addrs[0].Addr())
			}
			if _, err := r.e.Network(net); err != nil {
				t.Fatalf("the refused rm removed the network: %v", err)
			}
			if next := r.run("next", net); next.Addrs[0] == bad.Addrs[0] {
				t.Errorf("after the refused rm, a new endpoint got %v, the quarantined record's", next.Addrs[0])
			}
			r.rm("next")
			r.k.RemoveNetns(bad.Netns)
			r.stop()
			r.start()
			if err := r.e.RemoveNetwork(ctx, net); err != nil {
				t.Errorf("network rm with the quarantined container gone and the agent restarted: %v", err)
			}
		})
	}
}

// TestStartKeepsGarbledQuarantine: network v50 (its parent eth0.50 made
// by mvlan) is quarantined with its endpoint c1, and their quarantine
// entries are then garbled in the file. The start still takes both as
// quarantined: v50's parent is kept, c1's link and table row too, and
// the check reports them. A garbled entry used to end the listing there,
// its callers took the error as "none quarantined", and the parent and
// the row were removed as stale.
func TestStartKeepsGarbledQuarantine(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("v50", "subnet=172.16.50.0/24", "parent=eth0.50")
	c1 := r.run("c1", "v50")
	quarantineNetwork(t, r, n.ID)
	garbleQuarantine(t, r.dir, "")
	r.start()
	if _, ok := r.k.HostLink(n.Parent); !ok {
		t.Errorf("the quarantined network's parent %s was deleted", n.Parent)
	}
	if ls := r.k.NetnsLinks(c1.Netns); len(ls) != 1 {
		t.Errorf("links of the quarantined endpoint: %+v; want its eth0 kept", ls)
	}
	mac, _ := net.ParseMAC(c1.MAC)
	if known, _ := r.k.Sender(mac); !known {
		t.Errorf("the quarantined endpoint's table row was pruned")
	}
	drift, err := r.e.Check(context.Background())
	for _, id := range []string{n.ID, c1.ID} {
		if err != nil || !slices.ContainsFunc(drift, func(d string) bool { return strings.Contains(d, id+" is quarantined") }) {
			t.Errorf("drift %q (err %v); want the garbled entry of %s reported", drift, err, id)
		}
	}
}

// garbleQuarantine overwrites, with bbolt alone, the value of each entry
// of the state's quarantine bucket whose key starts with prefix.
func garbleQuarantine(t *testing.T, dir, prefix string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("quarantine"))
		c := b.Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
			n++
			if err := b.Put(slices.Clone(k), []byte("{garbage")); err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(err, db.Close()); err != nil || n == 0 {
		t.Fatalf("garble the quarantine entries %s*: %d (err %v)", prefix, n, err)
	}
}

// TestQuarantinedNetworkAddressesHeld: network pub is quarantined with
// its endpoint c1, whose container keeps its link and address. A network
// made again with pub's subnet (pub is gone from network ls) is refused,
// naming c1's address, as is any subnet that holds it; one that does not
// is made. Once c1's container is gone, the next start drops the record
// and the subnet is free again.
func TestQuarantinedNetworkAddressesHeld(t *testing.T) {
	r := newRig(t, "eth0", "eth1")
	n := r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	c1 := r.run("c1", "pub")
	quarantineNetwork(t, r, n.ID)
	r.start()
	ctx := context.Background()
	addr := c1.Addrs[0].Addr().String()
	for _, subnet := range []string{"172.16.86.0/24", "172.16.0.0/16"} {
		_, err := r.e.CreateNetwork(ctx, netRequest("again", "subnet="+subnet, "parent=eth1"))
		if engine.KindOf(err) != engine.KindConflict || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "c1") {
			t.Errorf("network on %s with quarantined c1 (%s) alive: %v; want a conflict naming both", subnet, addr, err)
		}
	}
	if _, err := r.e.Network("again"); err == nil {
		t.Fatal("a refused create made the network")
	}
	r.network("other", "subnet=172.16.87.0/24", "parent=eth1")
	if err := r.e.RemoveNetwork(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	r.k.RemoveNetns(c1.Netns)
	r.stop()
	r.start()
	if next := r.run("next", r.network("again", "subnet=172.16.86.0/24", "parent=eth1").Name); next.Addrs[0] != c1.Addrs[0] {
		t.Errorf("with c1's container gone, the network made again gave %v; want %v, free again", next.Addrs[0], c1.Addrs[0])
	}
}

// TestQuarantinedSharerLeavesIndex: records keep and zdup share keep's
// address X (zdup has it as an extra, as after a --recover of a link its
// container had added X to), and zdup is loaded after keep (by name), so
// the index had X as zdup's. zdup is quarantined on start; keep keeps X
// in the index all the same: the host shim routes to it, Holder names
// keep, run --ip X names keep, and rm keep gives X back (no drift says it
// is held by no endpoint).
func TestQuarantinedSharerLeavesIndex(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("pub", "subnet=172.16.86.0/24", "parent=eth0", "host_shim=auto")
	keep, dup := r.run("keep", "pub"), r.run("zdup", "pub")
	x := keep.Addrs[0]
	r.stop()
	st, err := store.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	dup.Addrs = append(dup.Addrs, x)
	if err := st.UpdateEndpoint(dup); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r.start()
	if got := r.endpoints(); len(got) != 1 || got["keep"] != "ready" {
		t.Fatalf("endpoints after start: %v; want keep alone, zdup quarantined", got)
	}
	if h, _, err := r.e.Holder(n.ID, x.Addr()); err != nil || h.Endpoint != "keep" {
		t.Errorf("holder of %s: %+v, %v; want endpoint keep", x.Addr(), h, err)
	}
	if routes := r.k.Routes(n.HostShim.Link); !slices.Contains(routes, x.Addr()) {
		t.Errorf("host shim routes %v; want one to keep's %s", routes, x.Addr())
	}
	_, err = r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Name: "other", IP: x.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), "in use by endpoint keep") {
		t.Errorf("run --ip %s: %v; want it refused as keep's", x.Addr(), err)
	}
	r.rm("keep")
	drift, err := r.e.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 1 || !strings.Contains(drift[0], dup.ID+" is quarantined") {
		t.Errorf("drift after rm keep: %q; want zdup's quarantine alone (%s given back)", drift, x.Addr())
	}
}

// quarantineNetwork stops r and quarantines network id, with its
// endpoints, in r's state file, as a start that refuses its record does.
func quarantineNetwork(t *testing.T, r *rig, id string) {
	t.Helper()
	r.stop()
	st, err := store.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(st.QuarantineNetwork(id, "test: pools refused"), st.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestQuarantinedNetworkDropped: a quarantined network's record stays
// while a container of it is there (its parent kept, the check reporting
// it), and goes at the first start after its last container did, with
// its parent eth0.50 (mvlan's), so that the check reports nothing and the
// network can be made again on the same parent. A record the store
// quarantines as it opens (a network's that does not decode) is shown by
// that agent and dropped by the next start.
func TestQuarantinedNetworkDropped(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("v50", "subnet=172.16.50.0/24", "parent=eth0.50")
	c1 := r.run("c1", "v50")
	quarantineNetwork(t, r, n.ID)
	r.start()
	quarantined := func(id string) bool {
		drift, err := r.e.Check(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(drift, func(d string) bool { return strings.Contains(d, id+" is quarantined") })
	}
	if _, ok := r.k.HostLink(n.Parent); !ok || !quarantined(n.ID) {
		t.Fatalf("with c1 there: parent %s kept %v, network reported %v; want both", n.Parent, ok, quarantined(n.ID))
	}
	r.stop()
	r.k.RemoveNetns(c1.Netns)
	r.start()
	if _, ok := r.k.HostLink(n.Parent); ok || quarantined(n.ID) || quarantined(c1.ID) {
		t.Fatalf("a start after c1 went: parent %s kept %v, network reported %v, c1 %v; want none",
			n.Parent, ok, quarantined(n.ID), quarantined(c1.ID))
	}
	r.run("c2", r.network("v50", "subnet=172.16.50.0/24", "parent=eth0.50").Name)

	r.stop()
	nstest.PutRecord(t, r.dir, "networks", "0123456789ab", "{garbage")
	// A cluster network's record stays: dropping it would take the host
	// out of the network in etcd.
	nstest.PutRecord(t, r.dir, "networks", "c1c1c1c1c1c1", `{"id":"c1c1c1c1c1c1","name":"cl","options":{"scope":"cluster"}}`)
	r.start()
	if !quarantined("0123456789ab") || !quarantined("c1c1c1c1c1c1") {
		t.Fatal("the network records quarantined as the state opened are not reported by that agent")
	}
	r.stop()
	r.start()
	if quarantined("0123456789ab") || !quarantined("c1c1c1c1c1c1") {
		t.Fatalf("the next start: local record reported %v, cluster record %v; want false, true",
			quarantined("0123456789ab"), quarantined("c1c1c1c1c1c1"))
	}
}

// TestQuarantinedNetworkKeptUnsure: a live quarantined endpoint record
// without a network ID may be of any quarantined network: none is dropped
// while its container is there; once it is gone, the network goes too.
func TestQuarantinedNetworkKeptUnsure(t *testing.T) {
	r := newRig(t, "eth0")
	n := r.network("v50", "subnet=172.16.50.0/24", "parent=eth0.50")
	c1 := r.run("c1", "v50")
	quarantineNetwork(t, r, n.ID)
	st, err := store.Open(r.dir) // c1's record: only as one of no network
	if err != nil {
		t.Fatal(err)
	}
	qs, err := st.Quarantined()
	for _, q := range qs {
		if q.Bucket == "endpoints" {
			err = errors.Join(err, st.DropQuarantined(q))
		}
	}
	if err := errors.Join(err, st.Close()); err != nil {
		t.Fatal(err)
	}
	c1.NetworkID = ""
	nstest.PutRecord(t, r.dir, "endpoints", c1.ID, nstest.JSON(t, c1)) // quarantined as the state opens
	for range 2 {
		r.start()
		if _, ok := r.k.HostLink(n.Parent); !ok {
			t.Fatalf("parent %s of the quarantined network deleted while c1, of no known network, is there", n.Parent)
		}
		r.stop()
	}
	r.k.RemoveNetns(c1.Netns)
	r.start()
	if _, ok := r.k.HostLink(n.Parent); ok {
		t.Fatalf("parent %s kept after c1 went", n.Parent)
	}
}
