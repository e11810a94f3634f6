package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

func TestNetworkLifecycle(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	id := strings.TrimSpace(a.ok("network", "create", "-d", "macvlan", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1",
		"--aux-address=exclude_host=172.16.86.250", "--label", "team=net,ops", "-o", "parent=eth0", "pub_net"))
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a 64-hex ID", id)
	}
	ls := a.ok("network", "ls")
	if !strings.Contains(ls, "pub_net") || !strings.Contains(ls, id[:12]) || !strings.Contains(ls, "eth0") {
		t.Fatalf("ls does not show the network:\n%s", ls)
	}
	if q := strings.TrimSpace(a.ok("network", "ls", "-q")); q != id[:12] {
		t.Fatalf("ls -q = %q, want %q", q, id[:12])
	}
	var nets []dockerNetwork
	if err := json.Unmarshal([]byte(a.ok("network", "inspect", "pub_net")), &nets); err != nil {
		t.Fatal(err)
	}
	n := nets[0]
	if n.Driver != "macvlan" || n.Options["parent"] != "eth0" || n.IPAM.Config[0].Gateway != "172.16.86.1" ||
		n.IPAM.Config[0].AuxiliaryAddresses["exclude_host"] != "172.16.86.250" || n.Labels["team"] != "net,ops" || n.ParentKind != "existing" {
		t.Fatalf("inspect: %+v", n)
	}
	a.ok("network", "rm", "pub_net")
	if _, ok := links(t, sb)["eth0"]; !ok {
		t.Fatal("network rm deleted the existing parent eth0")
	}
	if q := a.ok("network", "ls", "-q"); q != "" {
		t.Fatalf("network still listed after rm: %q", q)
	}
}

func TestGatewayInference(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=10.1.100.128/25", "--ipv6", "--subnet=2001:db8:abc8::/64", "-o", "parent=eth0", "n1")
	var nets []dockerNetwork
	if err := json.Unmarshal([]byte(a.ok("network", "inspect", "n1")), &nets); err != nil {
		t.Fatal(err)
	}
	got := []string{nets[0].IPAM.Config[0].Gateway, nets[0].IPAM.Config[1].Gateway}
	if !slices.Equal(got, []string{"10.1.100.129", "2001:db8:abc8::1"}) {
		t.Fatalf("inferred gateways %v, want [10.1.100.129 2001:db8:abc8::1]", got)
	}
}

// TestHostOnlyNetwork: no parent gives a link mvlan creates, marks and
// removes, and an internal network.
func TestHostOnlyNetwork(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	id := strings.TrimSpace(a.ok("network", "create", "--subnet=10.9.0.0/24", "--internal", "hostonly"))
	name := "mvl-" + id[:11]
	alias, ok := links(t, sb)[name]
	if !ok || !strings.HasSuffix(alias, "/net/"+id) {
		t.Fatalf("host-only link %s: present=%v alias=%q\n%v", name, ok, alias, links(t, sb))
	}
	a.ok("network", "rm", id[:12])
	if _, ok := links(t, sb)[name]; ok {
		t.Fatalf("network rm left link %s", name)
	}
	// Without --internal it is internal all the same, as Docker's macvlan
	// makes one: its containers get no default route (nothing answers
	// for the gateway on a host-only link).
	a.ok("network", "create", "--subnet=10.8.0.0/24", "np")
	if got := strings.TrimSpace(a.ok("network", "inspect", "-f", "{{.Internal}}", "np")); got != "true" {
		t.Errorf("a network without a parent: internal %q, want true", got)
	}
	e := &env{t: t, sb: sb, a: a}
	t.Cleanup(e.cleanup)
	c1 := e.name("1")
	e.runD(c1, "np")
	if routes := e.in(c1, "ip", "route"); strings.Contains(routes, "default") || !strings.Contains(routes, "10.8.0.0/24 dev eth0") {
		t.Errorf("routes of a container on a network without a parent:\n%s\nwant the subnet's, no default", routes)
	}
}

// TestVLANParent: a missing NAME.VID parent is created as an 802.1q link
// where the kernel can make one, and refused with an error naming 8021q
// where it cannot; either way rm leaves the sandbox as it was. Whether the
// kernel can is found by trying with iproute2 in the sandbox (a module
// that is merely not loaded is loaded by that attempt), not by looking
// for a loaded module. The lab covers creation on Debian's 6.1 too.
func TestVLANParent(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	before := links(t, sb)
	// The reference's macvlan60, as written there (its dangling -o too).
	ref60 := []string{"network", "create", "-d", "macvlan", "--subnet=192.168.60.0/24", "--gateway=192.168.60.1",
		"-o", "parent=eth0.60", "-o", "-o", "macvlan_mode=bridge", "macvlan60"}
	if probe, err := nstest.RunErr(sb.Path, "ip", "link", "add", "link", "eth0", "name", "probe.9", "type", "vlan", "id", "9"); err == nil {
		sb.Run(t, sb.Path, "ip", "link", "del", "probe.9")
		t.Log("the kernel creates 802.1q links: testing creation")
		a.ok("network", "create", "--subnet=192.168.50.0/24", "-o", "parent=eth0.50", "macvlan50")
		if d := sb.Run(t, sb.Path, "ip", "-d", "link", "show", "eth0.50"); !strings.Contains(d, "vlan protocol 802.1Q id 50") {
			t.Fatalf("eth0.50 is not VLAN 50 of eth0:\n%s", d)
		}
		a.ok("network", "rm", "macvlan50")
		a.ok(ref60...)
		if d := sb.Run(t, sb.Path, "ip", "-d", "link", "show", "eth0.60"); !strings.Contains(d, "vlan protocol 802.1Q id 60") {
			t.Fatalf("eth0.60 is not VLAN 60 of eth0:\n%s", d)
		}
		if got := strings.TrimSpace(a.ok("network", "inspect", "--format", `{{index .Options "macvlan_mode"}}`, "macvlan60")); got != "bridge" {
			t.Errorf("macvlan60's mode is %q, want bridge", got)
		}
		a.ok("network", "rm", "macvlan60")
	} else {
		t.Logf("the kernel has no 802.1q links (%v: %s): testing the error", err, strings.TrimSpace(probe))
		_, errs, code := a.mv("network", "create", "--subnet=192.168.50.0/24", "-o", "parent=eth0.50", "macvlan50")
		if code != 1 || !strings.Contains(errs, "eth0.50") || !strings.Contains(errs, "8021q") {
			t.Fatalf("exit %d, stderr %q; want 1 and an error naming eth0.50 and 8021q", code, errs)
		}
		if _, errs, code := a.mv(ref60...); code != 1 || !strings.Contains(errs, "eth0.60") || !strings.Contains(errs, "8021q") {
			t.Fatalf("the reference's macvlan60: exit %d, stderr %q; want 1 and an error naming eth0.60 and 8021q", code, errs)
		}
	}
	if after := links(t, sb); !maps.Equal(before, after) {
		t.Fatalf("links changed: %v -> %v", before, after)
	}
	if q := a.ok("network", "ls", "-q"); q != "" {
		t.Fatalf("network left behind: %q", q)
	}
}

// TestPreCreatedLinkKept: a link of the operator's, any name, survives rm.
func TestPreCreatedLinkKept(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "foo")
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=192.168.40.0/24", "--gateway=192.168.40.1", "-o", "parent=foo", "macvlan40")
	a.ok("network", "rm", "macvlan40")
	if _, ok := links(t, sb)["foo"]; !ok {
		t.Fatal("network rm deleted the operator's link foo")
	}
}

// TestPointToPoint: a /31 is a point-to-point network (README): the
// gateway takes the first address and one container the second; a second
// container finds no address, and the wire answers the container.
func TestPointToPoint(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.30.50.0/31", "-o", "parent=eth0", "p2p")
	e.in(e.sb.WirePath, "ip", "addr", "add", "172.30.50.0/31", "dev", "wire0")
	c1 := e.name("1")
	e.runD(c1, "p2p")
	mustContain(t, "eth0 of "+c1, e.in(c1, "ip", "-o", "addr", "show", "dev", "eth0"), "172.30.50.1/31")
	mustContain(t, "routes of "+c1, e.in(c1, "ip", "route"), "default via 172.30.50.0")
	e.in(c1, "ping", "-c", "1", "-W", "2", "172.30.50.0")
	_, errs, code := e.a.mv("run", "-d", "--name", e.name("2"), "--net", "p2p")
	if code != 1 || !strings.Contains(errs, "172.30.50.0/31") {
		t.Errorf("a second container on a /31: exit %d, stderr %q; want 1 and the subnet named", code, errs)
	}
	e.a.ok("rm", "-f", c1)
	e.a.ok("network", "rm", "p2p")
}

// TestNetworkConnectByName: Docker's `network connect NET CONTAINER` and
// `network disconnect NET CONTAINER`, a container named as mvlan names
// them (its namespace at /run/netns/NAME).
func TestNetworkConnectByName(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	ns := e.sb.Netns(t, "n1")
	name := filepath.Base(ns)
	e.a.ok("network", "connect", "--ip=172.16.86.9", "pub_net", name)
	if out := e.sb.Run(t, ns, "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "172.16.86.9/24") {
		t.Fatalf("network connect by name: eth0 in %s has no 172.16.86.9:\n%s", ns, out)
	}
	e.a.ok("network", "disconnect", "pub_net", name)
	for _, ep := range e.a.endpoints() {
		if ep.Netns == ns {
			t.Errorf("network disconnect by name left %+v", ep)
		}
	}
	// The link goes too, a few ms after the answer (README: deleted just
	// after, in the background).
	var out string
	if !waitFor(2*time.Second, func() bool {
		var err error
		out, err = nstest.RunErr(ns, "ip", "link", "show", "dev", "eth0")
		return err != nil && strings.Contains(out, `Device "eth0" does not exist`)
	}) {
		t.Errorf("network disconnect by name: eth0 still in %s 2 s later:\n%s", ns, out)
	}
	e.a.ok("network", "rm", "pub_net")
}

// TestStaleMarkedParentKept: a link that still carries mvlan's mark for
// a network that is gone (its removal could not delete it) and that a
// network was made on since, as an existing link, is that network's
// parent: a restart keeps it, where it removed it as stale before.
func TestStaleMarkedParentKept(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth5")
	a := newAgent(t, sb)
	a.start()
	gone := strings.Repeat("ab", 32)
	sb.Run(t, sb.Path, "ip", "link", "set", "eth5", "alias", "mvlan/"+agentID(t, a)+"/net/"+gone)
	a.ok("network", "create", "--subnet=10.95.0.0/24", "-o", "parent=eth5", "b")
	a.stop()
	a.start()
	if _, ok := links(t, sb)["eth5"]; !ok {
		t.Fatalf("the restart removed network b's parent eth5 (marked for a network that is gone):\n%s", a.log)
	}
	if ls := a.ok("network", "ls"); strings.Contains(ls, "missing") {
		t.Errorf("network b after the restart:\n%s", ls)
	}
	a.ok("network", "rm", "b")
}

// TestConnectIfnameTaken: connecting a namespace where the interface name
// is taken is a conflict (409, not an internal error) that says so, and
// leaves nothing: no endpoint, no link, and the address it would have had
// is the next one's, which without --ifname takes the first free name.
func TestConnectIfnameTaken(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=172.16.90.0/24", "-o", "parent=eth0", "pub_net")
	xp := sb.Netns(t, "x1")
	sb.Run(t, xp, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p1")
	before := sb.Run(t, xp, "ip", "-o", "link", "show")

	cl := api.NewClient(a.socket)
	_, err := cl.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub_net", Netns: xp, IfName: "eth0"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Kind != api.KindConflict || !strings.Contains(ae.Message, "eth0") ||
		!strings.Contains(ae.Message, "choose another interface name") {
		t.Fatalf("connect with eth0 taken: %v (%#v), want a conflict naming eth0 and the remedy", err, ae)
	}
	if eps := a.endpoints(); len(eps) != 0 {
		t.Errorf("the refused connect left endpoints %+v", eps)
	}
	if after := sb.Run(t, xp, "ip", "-o", "link", "show"); after != before {
		t.Errorf("the refused connect changed the namespace's links:\n%s\nwas:\n%s", after, before)
	}
	e, err := cl.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub_net", Netns: xp})
	if err != nil {
		t.Fatalf("connect without --ifname: %v", err)
	}
	if e.IfName != "eth1" || len(e.Addrs) != 1 || e.Addrs[0].String() != "172.16.90.2/24" {
		t.Errorf("connect without --ifname got %s %v, want eth1 (the first name free) with 172.16.90.2/24 (the first address, not held by the refused one)", e.IfName, e.Addrs)
	}
}

// TestNetworkRmDuringAttach: network rm while an attach is admitted but
// its record is not on disk yet (the agent holds the attach there) is
// refused as in use, naming the container, and the attach completes;
// network rm used to go through (the store had no endpoint yet), and the
// attach then failed with an internal error after making its link on a
// network that was gone.
func TestNetworkRmDuringAttach(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_TEST_HOLDPOINT=endpoint-create:before-state", "MVLAN_TEST_HOLD=1500ms"}
	a.start()
	a.ok("network", "create", "--subnet=172.16.91.0/24", "-o", "parent=eth0", "pub_net")
	name := sb.Name + "-c1"
	type result struct {
		out, errs string
		code      int
	}
	res := make(chan result, 1)
	go func() {
		out, errs, code := a.mv("run", "-d", "--name", name, "--net", "pub_net")
		res <- result{out, errs, code}
	}()
	admitted := waitFor(5*time.Second, func() bool { return len(a.endpoints()) == 1 })
	if !admitted {
		t.Fatalf("the attach was not admitted within 5 s\n%s", a.log)
	}
	_, errs, code := a.mv("network", "rm", "pub_net")
	if code == 0 || !strings.Contains(errs, name) {
		t.Errorf("network rm during an attach: exit %d, stderr %q; want refused, naming %s", code, errs, name)
	}
	if r := <-res; r.code != 0 {
		t.Fatalf("the attach during network rm: exit %d\n%s%s\n%s", r.code, r.out, r.errs, a.log)
	}
	if out := sb.Run(t, link.NetnsPath(name), "ip", "-o", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, "172.16.91.2/24") {
		t.Errorf("%s's eth0 after the refused rm: %q, want 172.16.91.2/24", name, out)
	}
	if ls := a.ok("network", "ls", "--format", "{{.Name}}"); !strings.Contains(ls, "pub_net") {
		t.Errorf("network ls after the refused rm: %q, want pub_net", ls)
	}
	a.ok("rm", "-f", name)
	a.ok("network", "rm", "pub_net")
}

// TestMACTakenOnAnotherNetwork: a --mac an endpoint of another network
// has is refused (the datapath keys endpoints by MAC host-wide), naming
// the MAC and the way out, and leaves nothing: no endpoint, namespace or
// held address; another MAC on that network goes.
func TestMACTakenOnAnotherNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.91.0/24", "-o", "parent=eth0", "neta")
	e.a.ok("network", "create", "--subnet=172.16.92.0/24", "-o", "parent=eth1", "netb")
	const mac = "02:00:5e:10:00:01"
	e.runD(e.name("a"), "neta", "--mac", mac)
	name := e.name("b")
	_, stderr, code := e.a.mv("run", "-d", "--name", name, "--net", "netb", "--mac", mac)
	if code == 0 || !strings.Contains(stderr, mac) || !strings.Contains(stderr, "another network") || !strings.Contains(stderr, "choose another --mac") {
		t.Fatalf("run with neta's MAC on netb: exit %d, %q; want refused naming the MAC and the remedy", code, stderr)
	}
	e.wantNothingLeft(name)
	ep := e.runD(name, "netb", "--mac", "02:00:5e:10:00:02")
	if got := addrOf(ep, false); got != "172.16.92.2/24" {
		t.Errorf("the next run on netb got %s, want 172.16.92.2/24 (the refused one held nothing)", got)
	}
}

// TestMACClaimedOnAnotherNetwork: two attaches with one MAC on two
// networks at once. The agent holds each attach for 5 s after its
// admission, before its link and datapath row: the second, admitted
// while the first is held, is refused (its row would have taken the
// first's place), and the first completes.
func TestMACClaimedOnAnotherNetwork(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	e.a.env = []string{"MVLAN_TEST_HOLDPOINT=endpoint-create:after-admit", "MVLAN_TEST_HOLD=5s"}
	e.a.start()
	t.Cleanup(e.cleanup)
	e.a.ok("network", "create", "--subnet=172.16.93.0/24", "-o", "parent=eth0", "neta")
	e.a.ok("network", "create", "--subnet=172.16.94.0/24", "-o", "parent=eth1", "netb")
	const mac = "02:00:5e:10:00:03"
	first, second := e.name("a"), e.name("b")
	done := make(chan string, 1)
	go func() {
		_, stderr, code := e.a.mv("run", "-d", "--name", first, "--net", "neta", "--mac", mac)
		done <- fmt.Sprintf("exit %d %s", code, stderr)
	}()
	for deadline := time.Now().Add(4 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if out, _, _ := e.a.mv("ps", "-a", "--format", "json"); strings.Contains(out, first) {
			break // admitted, and held
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not admitted within 4 s", first)
		}
	}
	_, stderr, code := e.a.mv("run", "-d", "--name", second, "--net", "netb", "--mac", mac)
	if code == 0 || !strings.Contains(stderr, mac) || !strings.Contains(stderr, "being attached") || !strings.Contains(stderr, "choose another --mac") {
		t.Errorf("run with the MAC of an attach under way on neta, on netb: exit %d, %q; want refused, naming the MAC, the attach under way and the remedy", code, stderr)
	}
	if got := <-done; !strings.HasPrefix(got, "exit 0 ") {
		t.Fatalf("the first attach: %s; want it complete", got)
	}
	e.wantNothingLeft(second)
}
