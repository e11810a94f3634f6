package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// TestNetworkRecreated: network sn (ID 1) loses its last members (host B
// was forgotten, A left), and host C creates sn again (ID 2). B, which
// still holds a block of ID 1, must not join sn as ID 1, nor hand out an
// address of its block, nor lease or claim: C's pool has the same
// addresses on the same segment. Its errors wrap ErrNetworkGone and say
// what to do.
func TestNetworkRecreated(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.82.0.0/24")}
	ctx := context.Background()
	a := newHost(t, e.URL, "hostA", "sn", cfg, 28)
	b := newHost(t, e.URL, "hostB", "sn", cfg, 28)
	if _, err := b.p.Allocate(ctx, "b0"); err != nil { // B holds .0/28 of ID 1
		t.Fatal(err)
	}
	if _, err := a.c.cli.Delete(ctx, memberKey("sn", "hostB")); err != nil { // B forgotten
		t.Fatal(err)
	}
	if gone, err := a.c.Leave(ctx, "sn", a.nw.ID); err != nil || !gone {
		t.Fatalf("the last member left: definition removed %v, %v", gone, err)
	}
	c, err := Dial(Config{URL: e.URL, Host: "hostC", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sn2 := Network{ID: testID("sn again"), Name: "sn"}
	if _, mine, err := c.Define(ctx, Definition{ID: sn2.ID, Create: api.NetworkCreate{Name: "sn"}}); err != nil || !mine {
		t.Fatalf("define sn again: %v %v", mine, err)
	}
	cp, err := c.OpenPool(sn2, cfg, 28, filepath.Join(t.TempDir(), "c.json"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := cp.Allocate(ctx, "c0") // .0/28 of ID 2
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		do   func() error
	}{
		// The claim's transaction finds the definition changed.
		{"claim", func() error { _, err := b.p.Request(ctx, netip.MustParseAddr("10.82.0.200"), "b3"); return err }},
		{"join", func() error { return b.c.Join(ctx, "sn", b.nw.ID) }},
		{"allocate", func() error { _, err := b.p.Allocate(ctx, "b1"); return err }},
		{"reserve", func() error { return b.p.Reserve(ctx) }},
		{"take", func() error { _, err := b.p.Take(netip.MustParseAddr("10.82.0.5"), "b4"); return err }},
	} {
		if err := tc.do(); !errors.Is(err, ErrNetworkGone) {
			t.Errorf("B's %s after sn was made again: %v; want ErrNetworkGone", tc.what, err)
		}
	}
	if a, ok := b.p.TakeFree("b2"); ok {
		t.Errorf("B handed out %s of its block after sn was made again", a)
	}
	msg := b.c.Gone(b.nw.ID)
	if msg == nil || !strings.Contains(msg.Error(), "network rm sn") || !strings.Contains(msg.Error(), sn2.ID[:12]) {
		t.Errorf("B's network: %v; want it gone, naming the new ID and mvlan network rm sn", msg)
	}
	t.Logf("C has %s; B: %v", ca, msg)
}

// TestForgottenHostJoinsAgain: a host whose membership was forgotten
// (ForgetDead: seen dead, holding nothing) and that leases or claims
// again is a member again; the network is not failed.
func TestForgottenHostJoinsAgain(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.87.0.0/24")}
	ctx := context.Background()
	newHost(t, e.URL, "hostA", "fj", cfg, 28)
	b := newHost(t, e.URL, "hostB", "fj", cfg, 28)
	for _, tc := range []struct {
		what string
		do   func() error
	}{
		{"lease", func() error { _, err := b.p.Allocate(ctx, "b0"); return err }},
		{"claim", func() error { _, err := b.p.Request(ctx, netip.MustParseAddr("10.87.0.200"), "b1"); return err }},
	} {
		if _, err := b.c.cli.Delete(ctx, memberKey("fj", "hostB")); err != nil {
			t.Fatal(err)
		}
		if err := tc.do(); err != nil {
			t.Fatalf("%s of a forgotten host: %v", tc.what, err)
		}
		r, err := b.c.cli.Get(ctx, memberKey("fj", "hostB"))
		if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != b.nw.ID {
			t.Fatalf("after the %s B's membership is %v %v; want %s", tc.what, r.Kvs, err, b.nw.ID)
		}
	}
}

func TestCheckID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{testID("x"), true},
		{strings.ToUpper(testID("x")), false},
		{testID("x")[:12], false},
		{"", false},
		{"../../../etc", false},
		{testID("x") + "0", false},
		{testID("x")[:63] + "g", false},
	} {
		err := CheckID(tc.id)
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.id)) {
			t.Errorf("CheckID(%q) = %v; want ok %v, an error naming the value", tc.id, err, tc.ok)
		}
	}
}

// TestBadIDInEtcd: definitions in etcd whose ID mvlan did not make (a
// path, a short one) are refused by Define naming the value, and left
// out of Definitions; a good one is listed.
func TestBadIDInEtcd(t *testing.T) {
	e := nstest.StartEtcd(t)
	h := newHost(t, e.URL, "hostA", "good", ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.89.0.0/24")}, 28)
	ctx := context.Background()
	for name, id := range map[string]string{"evil": "../../../tmp/x", "short": "abc"} {
		if _, err := h.c.cli.Put(ctx, networkKey(name), `{"id":"`+id+`","create":{"Name":"`+name+`"}}`); err != nil {
			t.Fatal(err)
		}
		_, _, err := h.c.Define(ctx, Definition{ID: testID(name), Create: api.NetworkCreate{Name: name}})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", id)) {
			t.Errorf("define %s, which etcd has with ID %q: %v; want refused naming the ID", name, id, err)
		}
	}
	defs, err := h.c.Definitions(ctx)
	if err != nil || len(defs) != 1 || defs[0].Create.Name != "good" {
		t.Errorf("definitions: %v %v; want only good", defs, err)
	}
}

// TestJoinWritesOnce: a join puts the membership once; a join again (the
// agent's periodic rejoin) finds it and writes nothing, so that rejoins
// do not grow etcd's revisions; a membership deleted meanwhile is put
// back.
func TestJoinWritesOnce(t *testing.T) {
	e := nstest.StartEtcd(t)
	dial := func(host string) *Client {
		c, err := Dial(Config{URL: e.URL, Host: host, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial("hostA"), dial("hostB")
	nw := joinNet(t, a, "jnet")
	ctx := context.Background()
	if err := b.Join(ctx, "jnet", nw.ID); err != nil {
		t.Fatal(err)
	}
	rev := func() int64 {
		r, err := b.cli.Get(ctx, memberKey("jnet", "hostB"))
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("hostB's membership: %v %v", r, err)
		}
		return r.Header.Revision
	}
	before := rev()
	for range 3 {
		if err := b.Join(ctx, "jnet", nw.ID); err != nil {
			t.Fatal(err)
		}
	}
	if after := rev(); after != before {
		t.Errorf("etcd's revision went from %d to %d over three joins of a member; want no write", before, after)
	}
	if _, err := b.cli.Delete(ctx, memberKey("jnet", "hostB")); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, "jnet", nw.ID); err != nil {
		t.Fatal(err)
	}
	rev()
}

// TestLeaveOrder: Leave is held half way (a hold point) and etcd looked
// at then. LeaveOpen (a network whose pool was open here) has ended the
// membership first, so a lease of that pool that etcd applies late (its
// request timed out on the host, yet reached etcd) fails its guard and
// leaves nothing behind that no one would give back (the host is alive:
// reclaim never would). Leave (a stray: no pool here) has given the
// blocks back first and kept the membership, so that a try cut short
// there is found again (leaveStrays lists the memberships).
func TestLeaveOrder(t *testing.T) {
	e := nstest.StartEtcd(t)
	t.Setenv("MVLAN_TEST_HOLDPOINT", "cluster-leave:half")
	t.Setenv("MVLAN_TEST_HOLD", "1s")
	ctx := context.Background()
	for i, open := range []bool{true, false} {
		name := fmt.Sprintf("ln%d", i)
		cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix(fmt.Sprintf("10.83.%d.0/24", i))}
		a := newHost(t, e.URL, "hostA", name, cfg, 28)
		newHost(t, e.URL, "hostB", name, cfg, 28) // a member that stays: the definition does too
		if _, err := a.p.Allocate(ctx, "a0"); err != nil {
			t.Fatal(err)
		}
		guard, err := a.p.guard(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leave := map[bool]func(context.Context, string, string) (bool, error){true: a.c.LeaveOpen, false: a.c.Leave}[open]
		left := make(chan error, 1)
		go func() {
			_, err := leave(ctx, name, a.nw.ID)
			left <- err
		}()
		member, blocks := halfWay(t, a, name)
		switch {
		case open && member:
			t.Errorf("LeaveOpen gave hostA's blocks back before it ended the membership")
		case !open && !member:
			t.Errorf("Leave ended hostA's membership before it gave the blocks back")
		case open && blocks:
			late := blockKey(a.nw.ID, netip.MustParsePrefix(fmt.Sprintf("10.83.%d.240/28", i)))
			r, err := a.c.cli.Txn(ctx).If(append(guard, clientv3.Compare(clientv3.CreateRevision(late), "=", 0))...).
				Then(clientv3.OpPut(late, "hostA")).Commit()
			if err != nil || r.Succeeded {
				t.Errorf("a lease applied while hostA was leaving: succeeded %v (%v); want it refused", r != nil && r.Succeeded, err)
			}
		}
		if err := <-left; err != nil {
			t.Fatal(err)
		}
		for b, h := range etcdBlocks(t, a.c, a.nw.ID, false) {
			if h == "hostA" {
				t.Errorf("hostA left %s, but etcd still has it hold block %s", name, b)
			}
		}
	}
}

// halfWay waits until one of Leave's two steps on network name is done
// (hostA's membership or its blocks gone from etcd) and says what is
// left of the two.
func halfWay(t *testing.T, a *host, name string) (member, blocks bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r, err := a.c.cli.Get(context.Background(), memberKey(name, "hostA"))
		if err != nil {
			t.Fatal(err)
		}
		member, blocks = len(r.Kvs) == 1, slices.Contains(slices.Collect(maps.Values(etcdBlocks(t, a.c, a.nw.ID, false))), "hostA")
		if !member || !blocks {
			return member, blocks
		}
	}
	t.Fatal("Leave did not get half way in 5 s")
	return
}
