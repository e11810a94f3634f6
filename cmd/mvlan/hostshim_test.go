package main

// Privileged end-to-end tests of the host shim (-o host_shim, issue 17):
// the sandbox's host namespace reaches its own containers through a
// macvlan of its own on the network's parent.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// inspectNet returns the network as the API serves it.
func (a *agentProc) inspectNet(ref string) api.Network {
	a.t.Helper()
	cl := api.NewClient(a.socket)
	defer cl.Close()
	n, err := cl.Network(context.Background(), ref)
	if err != nil {
		a.t.Fatalf("inspect %s: %v\n%s", ref, err, a.log)
	}
	return n
}

// shimStats returns the host shim counters of network name.
func (a *agentProc) shimStats(name string) api.Traffic {
	a.t.Helper()
	cl := api.NewClient(a.socket)
	defer cl.Close()
	s, err := cl.Stats(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	for _, n := range s.Networks {
		if n.Network == name && n.HostShim != nil {
			return *n.HostShim
		}
	}
	a.t.Fatalf("stats: no host shim counters for %s", name)
	return api.Traffic{}
}

// quietShim returns the host shim's counters of network name once they
// have not moved for 2 s (the start-up multicast of links just made is
// over), or as they are after 20 s.
func (a *agentProc) quietShim(name string) api.Traffic {
	a.t.Helper()
	start := time.Now()
	last, since := a.shimStats(name), start
	for time.Since(since) < 2*time.Second && time.Since(start) < 20*time.Second {
		time.Sleep(250 * time.Millisecond)
		if s := a.shimStats(name); s.Rx.Packets != last.Rx.Packets || s.Tx.Packets != last.Tx.Packets {
			last, since = s, time.Now()
		}
	}
	if time.Since(since) < 2*time.Second {
		a.t.Logf("host shim still moving after %v; counting from here", time.Since(start).Round(time.Millisecond))
	} else {
		a.t.Logf("host shim quiet after %v", since.Sub(start).Round(time.Millisecond))
	}
	return last
}

// shimRoutes returns the destinations of mvlan's routes (proto 109) on
// link dev in the sandbox host, sorted.
func shimRoutes(t *testing.T, sb *nstest.Sandbox, dev string) []string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		var rs []struct{ Dst string }
		raw := sb.Run(t, sb.Path, "ip", "-j", fam, "route", "show", "dev", dev, "proto", "109")
		if err := json.Unmarshal([]byte(raw), &rs); err != nil {
			t.Fatalf("ip -j route: %v: %s", err, raw)
		}
		for _, r := range rs {
			out = append(out, r.Dst)
		}
	}
	slices.Sort(out)
	return out
}

// hostAddrs are the endpoints' addresses without prefix lengths, sorted.
func hostAddrs(eps ...api.Endpoint) []string {
	var out []string
	for _, e := range eps {
		for _, p := range e.Addrs {
			out = append(out, p.Addr().String())
		}
	}
	slices.Sort(out)
	return out
}

// tcpEcho listens on port 7777 inside namespace ns, dials it from the
// sandbox host and checks that what it sends comes back.
func tcpEcho(t *testing.T, sb *nstest.Sandbox, ns string, addr netip.Addr) {
	t.Helper()
	var ln net.Listener
	if err := nstest.In(ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 7777).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	var conn net.Conn
	if err := nstest.In(sb.Path, func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(addr, 7777).String())
		return err
	}); err != nil {
		t.Fatalf("host -> %s:7777: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	msg := []byte("hello from the host " + addr.String())
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo from %s: %q, %v; want %q", addr, got, err, msg)
	}
}

// shimPings: the host pings every address of eps of a family the shim
// has, and each endpoint pings every shim address.
func shimPings(t *testing.T, e *env, shim []netip.Addr, eps ...api.Endpoint) {
	t.Helper()
	for _, ep := range eps {
		for _, p := range ep.Addrs {
			if !slices.ContainsFunc(shim, func(s netip.Addr) bool { return s.Is4() == p.Addr().Is4() }) {
				continue
			}
			out, err := e.pingFrom(e.sb.Path, p.Addr().String(), false)
			e.wantPingOK("host -> "+ep.Name+" "+p.Addr().String(), out, exitOf(err))
		}
		for _, s := range shim {
			out, err := e.pingFrom(ep.Netns, s.String(), false)
			e.wantPingOK(ep.Name+" -> shim "+s.String(), out, exitOf(err))
		}
	}
}

// TestHostShim: a network with host_shim=auto: the shim has the pool's
// first free addresses (never a container's), the host and the containers
// ping each other both ways in IPv4 and IPv6, TCP host -> container works,
// the host has exactly one route per container address through the shim
// and no subnet route, the counters move, doctor finds no drift; it
// survives a restart, is re-made when deleted, goes with update off and
// comes back with an address given, and network rm leaves nothing.
func TestHostShim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.a
	a.ok("network", "create", "--subnet=10.77.0.0/24", "--ipv6", "--subnet=fd77::/64", "-o", "parent=eth0", "-o", "host_shim=auto", "shimnet")
	n := a.inspectNet("shimnet")
	want := []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd77::2")}
	if n.HostShim == nil || n.HostShim.Link != "mvh-shimnet" || !slices.Equal(n.HostShim.Addrs, want) || n.HostShim.Status != "ok" {
		t.Fatalf("inspect host_shim = %+v; want mvh-shimnet with %v, ok", n.HostShim, want)
	}
	mustContain(t, "network inspect", a.ok("network", "inspect", "shimnet"),
		`"HostShim": {`, `"link": "mvh-shimnet"`, `"10.77.0.2"`, `"fd77::2"`, `"host_shim": "10.77.0.2,fd77::2"`)
	if got := n.Options["host_shim"]; got != "10.77.0.2,fd77::2" {
		t.Errorf("options host_shim = %q, want the addresses held", got)
	}
	c1 := e.runD(e.name("1"), "shimnet")
	c2 := e.runD(e.name("2"), "shimnet")
	if slices.ContainsFunc(append(c1.Addrs, c2.Addrs...), func(p netip.Prefix) bool { return slices.Contains(want, p.Addr()) }) {
		t.Fatalf("a container got a shim address: %v %v", c1.Addrs, c2.Addrs)
	}
	mustContain(t, "shim link", e.in(e.sb.Path, "ip", "-d", "addr", "show", "dev", "mvh-shimnet"),
		"macvlan mode bridge", "inet 10.77.0.2/32", "inet6 fd77::2/128", "alias mvlan/")
	if got, w := shimRoutes(t, e.sb, "mvh-shimnet"), hostAddrs(c1, c2); !slices.Equal(got, w) {
		t.Fatalf("routes through the shim %v, want one per container address %v", got, w)
	}
	if r := e.in(e.sb.Path, "ip", "route", "show", "10.77.0.0/24"); strings.TrimSpace(r) != "" {
		t.Errorf("the host has a subnet route: %q; want host routes only", r)
	}

	before := a.quietShim("shimnet")
	shimPings(t, e, want, c1, c2)
	after := a.shimStats("shimnet")
	// Each way, 32 echo frames: 2 containers x 2 families x (4 requests +
	// 4 replies). Up to 12 more: the shim's resolution of each container
	// address (a request out and an answer in, 4 each way), the
	// containers' of the shim (4 each way) and each container's probe of
	// its entry for the shim, 5 s after it first used it (in and out, up
	// to 4 each way). The IPv6 start-up multicast of the links made just
	// before (MLD reports and DAD, resent within a second or two; 15 more
	// once, in a loaded CI run) is over before `before`: quietShim.
	// Seen here: tx +40, rx +38..39.
	wantDelta(t, "shim tx packets", before.Tx.Packets, after.Tx.Packets, 32, 44)
	wantDelta(t, "shim rx packets", before.Rx.Packets, after.Rx.Packets, 32, 44)
	tcpEcho(t, e.sb, c1.Netns, c1.Addrs[0].Addr())
	tcpEcho(t, e.sb, c2.Netns, c2.Addrs[1].Addr())
	if d := drift(t, a); len(d) > 0 {
		t.Fatalf("drift: %v", d)
	}

	a.ok("rm", "-f", c2.Name)
	if !e.waitGone(c2.Name, 5*time.Second) {
		t.Fatal("c2 still listed")
	}
	// The removal finishes in the background; its route goes with it.
	if !waitFor(5*time.Second, func() bool { return slices.Equal(shimRoutes(t, e.sb, "mvh-shimnet"), hostAddrs(c1)) }) {
		t.Fatalf("after rm c2: routes %v, want %v", shimRoutes(t, e.sb, "mvh-shimnet"), hostAddrs(c1))
	}

	// A route someone removed is drift, and the next start puts it back.
	// A refresh on a parent link event (c2's link went) may put it back
	// first: then the route is removed again.
	dst := c1.Addrs[0].Addr().String()
	for try := 0; ; try++ {
		e.in(e.sb.Path, "ip", "route", "del", dst, "dev", "mvh-shimnet")
		d := drift(t, a)
		if slices.Contains(d, "network shimnet: no route to "+dst+" through host shim mvh-shimnet") {
			break
		}
		routes := shimRoutes(t, e.sb, "mvh-shimnet")
		if !slices.Contains(routes, dst) || try == 4 {
			t.Fatalf("doctor with the route to %s gone: %v; want it named (routes now %v)", dst, d, routes)
		}
	}
	// One of mvlan's to an address no endpoint has is drift too.
	stray := c2.Addrs[0].Addr().String()
	e.in(e.sb.Path, "ip", "route", "add", stray, "dev", "mvh-shimnet", "proto", "109")
	if d := drift(t, a); !slices.Contains(d, "network shimnet: host shim mvh-shimnet routes "+stray+", which no endpoint has") {
		t.Fatalf("doctor with a route to %s, which no endpoint has: %v; want it named", stray, d)
	}
	a.stop()
	a.start()
	if got := countShims(t, e.sb); got != 1 {
		t.Fatalf("after restart: %d shim links, want 1", got)
	}
	if got, w := shimRoutes(t, e.sb, "mvh-shimnet"), hostAddrs(c1); !slices.Equal(got, w) {
		t.Fatalf("after restart: routes %v, want %v", got, w)
	}
	shimPings(t, e, want, c1)

	e.in(e.sb.Path, "ip", "link", "del", "mvh-shimnet")
	if !waitFor(5*time.Second, func() bool {
		r, err := nstest.RunErr(e.sb.Path, "ip", "-j", "route", "show", "dev", "mvh-shimnet", "proto", "109")
		return err == nil && strings.Contains(r, c1.Addrs[0].Addr().String())
	}) {
		t.Fatalf("the deleted shim was not re-made with its routes\n%s", a.log)
	}
	shimPings(t, e, want, c1)
	if d := drift(t, a); len(d) > 0 {
		t.Fatalf("drift after re-make: %v", d)
	}

	a.ok("network", "update", "-o", "host_shim=off", "shimnet")
	if got := countShims(t, e.sb); got != 0 {
		t.Fatalf("after off: %d shim links, want 0", got)
	}
	if n := a.inspectNet("shimnet"); n.HostShim != nil || n.Options["host_shim"] != "" {
		t.Fatalf("after off: inspect still has a shim: %+v %v", n.HostShim, n.Options)
	}
	if out, err := e.pingFrom(e.sb.Path, c1.Addrs[0].Addr().String(), true); err == nil {
		t.Fatalf("host -> c1 without a shim: ping works:\n%s", out)
	}

	a.ok("network", "update", "-o", "host_shim=10.77.0.50", "shimnet")
	shimPings(t, e, []netip.Addr{netip.MustParseAddr("10.77.0.50")}, c1)
	if d := drift(t, a); len(d) > 0 {
		t.Fatalf("drift after update: %v", d)
	}

	a.ok("rm", "-f", c1.Name)
	e.waitGone(c1.Name, 5*time.Second)
	a.ok("network", "rm", "shimnet")
	if got := countShims(t, e.sb); got != 0 {
		t.Fatalf("after network rm: %d shim links, want 0", got)
	}
	if r := e.in(e.sb.Path, "ip", "route", "show", "proto", "109"); strings.TrimSpace(r) != "" {
		t.Fatalf("after network rm: routes left: %s", r)
	}
}

// countShims counts the links called mvh-* in the sandbox host.
func countShims(t *testing.T, sb *nstest.Sandbox) int {
	t.Helper()
	n := 0
	for name := range links(t, sb) {
		if strings.HasPrefix(name, "mvh-") {
			n++
		}
	}
	return n
}

// TestHostShimCrashPoints: the agent is killed (SIGKILL) between the
// steps of each shim transition; once started again it has exactly the
// shims its state has, with their routes, and no drift.
func TestHostShimCrashPoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		point    string
		setup    []string // before the crash, on a network "cn" made without a shim
		op       []string
		shimLeft bool
	}{
		{"network-create:after-link", nil, []string{"network", "create", "--subnet=10.81.0.0/24", "-o", "parent=eth0", "-o", "host_shim=auto", "cn2"}, false},
		{"network-create:after-state", nil, []string{"network", "create", "--subnet=10.81.0.0/24", "-o", "parent=eth0", "-o", "host_shim=auto", "cn2"}, true},
		{"shim-on:after-link", nil, []string{"network", "update", "-o", "host_shim=auto", "cn"}, false},
		{"shim-off:after-state", []string{"network", "update", "-o", "host_shim=auto", "cn"}, []string{"network", "update", "-o", "host_shim=off", "cn"}, false},
		{"network-rm:after-state", []string{"network", "create", "--subnet=10.81.0.0/24", "-o", "parent=eth0", "-o", "host_shim=auto", "cn2"}, []string{"network", "rm", "cn2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.point, func(t *testing.T) {
			e := newEnv(t, "eth1")
			a := e.a
			a.ok("network", "create", "--subnet=10.80.0.0/24", "-o", "parent=eth1", "cn")
			c1 := e.runD(e.name("1"), "cn")
			if tt.setup != nil {
				a.ok(tt.setup...)
			}
			a.stop()
			a.start("MVLAN_TEST_CRASHPOINT=" + tt.point)
			a.mv(tt.op...)
			a.waitExit()
			a.start()
			if got, want := countShims(t, e.sb), map[bool]int{false: 0, true: 1}[tt.shimLeft]; got != want {
				t.Fatalf("after restart: %d shim links, want %d\n%s", got, want, a.log)
			}
			if d := drift(t, a); len(d) > 0 {
				t.Fatalf("drift after restart: %v\n%s", d, a.log)
			}
			// Turning it on now works and gives exactly one shim, routed.
			a.ok("network", "update", "-o", "host_shim=auto", "cn")
			shimPings(t, e, a.inspectNet("cn").HostShim.Addrs, c1)
			if got, w := shimRoutes(t, e.sb, "mvh-cn"), hostAddrs(c1); !slices.Equal(got, w) {
				t.Fatalf("routes %v, want %v", got, w)
			}
			a.kill() // SIGKILL with the shim on: a start keeps it as it is
			a.start()
			if got := countShims(t, e.sb); got != 1+map[bool]int{false: 0, true: 1}[tt.shimLeft] {
				t.Fatalf("after SIGKILL and start: %d shim links\n%s", got, a.log)
			}
			if got, w := shimRoutes(t, e.sb, "mvh-cn"), hostAddrs(c1); !slices.Equal(got, w) {
				t.Fatalf("after SIGKILL and start: routes %v, want %v", got, w)
			}
			if d := drift(t, a); len(d) > 0 {
				t.Fatalf("drift: %v", d)
			}
		})
	}
}

// TestHostShimModes: the shim is always a bridge-mode macvlan. With
// private containers the kernel passes nothing between them and the shim,
// even through a switch that sends frames back (the host cannot reach
// them); with vepa containers it works only through such a switch (here a
// bridge with hairpin on in the wire namespace); passthru is refused.
func TestHostShimModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	a := e.a
	_, errs, code := a.mv("network", "create", "--subnet=10.83.0.0/24", "-o", "parent=eth1", "-o", "macvlan_mode=passthru", "-o", "host_shim=auto", "pt")
	if code != 1 || !strings.Contains(errs, "passthru") || !strings.Contains(errs, "macvlan_mode=bridge") {
		t.Fatalf("passthru with a shim: exit %d, %q; want 1 and a message naming passthru and bridge", code, errs)
	}
	if got := countShims(t, e.sb); got != 0 {
		t.Fatalf("a refused network left %d shims", got)
	}
	for _, tt := range []struct {
		mode    string
		hairpin bool // the switch sends frames back out of the port they came in
		reach   bool
	}{
		{"private", false, false},
		{"private", true, false},
		{"vepa", false, false},
		{"vepa", true, true},
	} {
		name := tt.mode
		if tt.hairpin {
			name += "-hp"
		}
		a.ok("network", "create", "--subnet=10.84.0.0/24", "-o", "parent=eth0", "-o", "macvlan_mode="+tt.mode, "-o", "host_shim=auto", name)
		c := e.runD(e.name(name), name)
		if tt.hairpin {
			e.in(e.sb.WirePath, "ip", "link", "add", "br0", "type", "bridge")
			e.in(e.sb.WirePath, "ip", "link", "set", "wire0", "master", "br0")
			e.in(e.sb.WirePath, "ip", "link", "set", "wire0", "type", "bridge_slave", "hairpin", "on")
			e.in(e.sb.WirePath, "ip", "link", "set", "br0", "up")
		}
		out, err := e.pingFrom(e.sb.Path, c.Addrs[0].Addr().String(), !tt.reach)
		if tt.reach {
			e.wantPingOK(name+": host -> container", out, exitOf(err))
		} else if err == nil {
			t.Errorf("%s: host -> container works:\n%s", name, out)
		}
		a.ok("rm", "-f", c.Name)
		e.waitGone(c.Name, 5*time.Second)
		a.ok("network", "rm", name)
		if tt.hairpin {
			e.in(e.sb.WirePath, "ip", "link", "del", "br0")
		}
	}
}

// TestHostShimTwoNetworks: two networks with shims on two parents; the
// host reaches both; their containers, routed through the host (each
// with a route to the other subnet via its own shim, and ip_forward on),
// still cannot reach each other: a frame to the own shim for an address
// not the shim's is dropped there as host_route. (On a network with
// allow_router=true the host forwards it, and it leaves the other shim
// with a source address not its own, dropped as ip_spoof:
// TestHostShimRoute.)
func TestHostShimTwoNetworks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	a := e.a
	a.ok("network", "create", "--subnet=10.85.0.0/24", "-o", "parent=eth0", "-o", "host_shim=auto", "na")
	a.ok("network", "create", "--subnet=10.86.0.0/24", "-o", "parent=eth1", "-o", "host_shim=auto", "nb")
	ca := e.runD(e.name("a"), "na")
	cb := e.runD(e.name("b"), "nb")
	shimPings(t, e, a.inspectNet("na").HostShim.Addrs, ca)
	shimPings(t, e, a.inspectNet("nb").HostShim.Addrs, cb)
	e.in(e.sb.Path, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	e.in(ca.Netns, "ip", "route", "add", "10.86.0.0/24", "via", "10.85.0.2")
	e.in(cb.Netns, "ip", "route", "add", "10.85.0.0/24", "via", "10.86.0.2")
	before := policyDrops(t, a, "na", "host_route")
	out, err := e.pingFrom(ca.Netns, cb.Addrs[0].Addr().String(), true)
	if err == nil {
		t.Fatalf("a -> b through the host works:\n%s", out)
	}
	if d := policyDrops(t, a, "na", "host_route") - before; d != 2 {
		t.Errorf("na host_route drops moved by %d, want 2 (the two echo requests to na's shim)", d)
	}
}

// policyDrops returns the drops of network net for reason.
func policyDrops(t *testing.T, a *agentProc, net, reason string) uint64 {
	t.Helper()
	cl := api.NewClient(a.socket)
	defer cl.Close()
	s, err := cl.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Networks {
		if n.Network == net {
			return n.Drops[reason].Packets
		}
	}
	t.Fatalf("no stats for network %s", net)
	return 0
}

// TestHostShimBadInput: wrong host_shim values and updates are refused with
// a message naming the value and what would be right, and change nothing.
func TestHostShimBadInput(t *testing.T) {
	e := newEnv(t)
	a := e.a
	a.ok("network", "create", "--subnet=10.87.0.0/24", "-o", "parent=eth0", "bn")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"network", "create", "--subnet=10.88.0.0/24", "-o", "parent=eth1", "-o", "host_shim=10.99.0.2", "x"}, 1, "10.99.0.2 is in none of the network's subnets (10.88.0.0/24)"},
		{[]string{"network", "create", "--subnet=10.88.0.0/24", "-o", "host_shim=", "x"}, 1, "host_shim has no value"},
		{[]string{"network", "update", "-o", "host_shim=10.87.0.1", "bn"}, 1, "10.87.0.1"},
		{[]string{"network", "update", "-o", "host_shim=fd00::2", "bn"}, 1, "fd00::2 is in none of the network's subnets"},
		{[]string{"network", "update", "-o", "host_shim=yes", "bn"}, 1, `"yes" is not an IP address; use auto or IP[,IP6]`},
		{[]string{"network", "update", "-o", "parent=eth1", "bn"}, 1, `option "parent=eth1" cannot change`},
		{[]string{"network", "update", "-o", "host_shim=auto", "nosuch"}, 1, "nosuch"},
		{[]string{"network", "update", "bn"}, 2, "needs an option"},
	}
	for _, tt := range tests {
		out, errs, code := a.mv(tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("mvlan %s: exit %d, %q%q; want exit %d and %q", strings.Join(tt.args, " "), code, out, errs, tt.code, tt.want)
		}
	}
	if got := countShims(t, e.sb); got != 0 {
		t.Fatalf("refused requests left %d shims", got)
	}
	if n := a.inspectNet("bn"); n.HostShim != nil || n.Options["host_shim"] != "" {
		t.Fatalf("refused update changed the network: %+v %v", n.HostShim, n.Options)
	}
	// The gateway's address was not taken by the refused update: the
	// first container gets 10.87.0.2, as without it.
	if c := e.runD(e.name("1"), "bn"); c.Addrs[0].Addr().String() != "10.87.0.2" {
		t.Fatalf("first container got %v, want 10.87.0.2", c.Addrs)
	}
}

// TestHostShimRemote: once the operator adds the subnet route through the
// shim (the host has no address of its own on the segment), the host and
// a machine on the wire (a macvlan of wire0 in the wire namespace) ping
// each other through the shim, and the container's host route still wins.
func TestHostShimRemote(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.a
	a.ok("network", "create", "--subnet=10.89.0.0/24", "-o", "parent=eth0", "-o", "host_shim=10.89.0.2", "rn")
	c := e.runD(e.name("1"), "rn")
	e.in(e.sb.WirePath, "ip", "link", "add", "remote", "link", "wire0", "type", "macvlan", "mode", "bridge")
	e.in(e.sb.WirePath, "ip", "addr", "add", "10.89.0.100/24", "dev", "remote")
	e.in(e.sb.WirePath, "ip", "link", "set", "remote", "up")
	e.in(e.sb.Path, "ip", "route", "add", "10.89.0.0/24", "dev", "mvh-rn", "src", "10.89.0.2")
	out, err := e.pingFrom(e.sb.Path, "10.89.0.100", false)
	e.wantPingOK("host -> remote through the shim", out, exitOf(err))
	out, err = e.pingFrom(e.sb.WirePath, "10.89.0.2", false)
	e.wantPingOK("remote -> shim", out, exitOf(err))
	shimPings(t, e, []netip.Addr{netip.MustParseAddr("10.89.0.2")}, c)
	for _, r := range []string{"arp_spoof", "ip_spoof", "mac_spoof"} {
		if d := policyDrops(t, a, "rn", r); d != 0 {
			t.Errorf("%s drops on rn: %d, want 0\n%s", r, d, e.in(e.sb.Path, "ip", "neigh"))
		}
	}
}

// TestHostShimParentARP: the host's own address on the parent (the most
// common set-up) is answered to the wire once per ARP request, from the
// parent's MAC; the shim, which receives the broadcast too, stays silent
// (arp_ignore=1) instead of answering with its own MAC, a reply its
// egress program would drop as arp_spoof. The shim still answers for its
// own address. With the host's default addr_gen_mode not EUI-64, the
// shim's link-local is still the EUI-64 one the datapath knows.
func TestHostShimParentARP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.a
	e.in(e.sb.Path, "sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=3")
	e.in(e.sb.Path, "ip", "addr", "add", "10.90.0.10/24", "dev", "eth0")
	a.ok("network", "create", "--subnet=10.90.0.0/24", "--ipv6", "--subnet=fd90::/64", "-o", "parent=eth0", "-o", "host_shim=auto", "pn")
	shim := a.inspectNet("pn").HostShim
	c := e.runD(e.name("1"), "pn")
	shimPings(t, e, shim.Addrs, c)
	shimMAC := nstest.MAC(t, shim.MAC)
	mustContain(t, "shim link-local", e.in(e.sb.Path, "ip", "-6", "addr", "show", "dev", shim.Link, "scope", "link"),
		"inet6 "+eui64(shimMAC).String()+"/64")
	ifMAC := func(ns, name string) net.HardwareAddr {
		var mac net.HardwareAddr
		if err := nstest.In(ns, func() error {
			ifi, err := net.InterfaceByName(name)
			if err == nil {
				mac = ifi.HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return mac
	}
	wire, parent := ifMAC(e.sb.WirePath, "wire0"), ifMAC(e.sb.Path, "eth0")
	before := policyDrops(t, a, "pn", "arp_spoof")
	capture := nstest.NewCapture(t, e.sb.WirePath, "wire0")
	const n = 5
	sendFrames(t, e.sb.WirePath, "wire0", arpRequest(wire, addr("10.90.0.100"), addr("10.90.0.10")), n)
	// The macvlans get broadcasts from a queue, in order: once the shim
	// answered for its own address it has seen the requests before.
	sendFrames(t, e.sb.WirePath, "wire0", arpRequest(wire, addr("10.90.0.100"), shim.Addrs[0]), 1)
	var replies []string
	shimAnswered := false
	_, _ = capture.Wait(3*time.Second, func(f []byte) bool {
		if len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_ARP || binary.BigEndian.Uint16(f[20:]) != 2 {
			return false
		}
		sender, _ := netip.AddrFromSlice(f[28:32])
		switch sender {
		case addr("10.90.0.10"):
			replies = append(replies, net.HardwareAddr(f[22:28]).String())
		case shim.Addrs[0]:
			shimAnswered = slices.Equal(f[22:28], shimMAC)
		}
		return shimAnswered
	})
	if !shimAnswered {
		t.Fatalf("the shim did not answer an ARP request for its own address %s", shim.Addrs[0])
	}
	if len(replies) != n || slices.ContainsFunc(replies, func(m string) bool { return m != parent.String() }) {
		t.Errorf("replies for the parent's 10.90.0.10 from %v; want %d, each from the parent's MAC %s", replies, n, parent)
	}
	if d := policyDrops(t, a, "pn", "arp_spoof") - before; d != 0 {
		t.Errorf("arp_spoof drops on pn moved by %d on ARP requests for the parent's address; want 0", d)
	}
}

// TestHostShimUpdateAddrs: an update to a container's address is refused
// naming it, and the shim keeps its link and address; an update to other
// addresses (IPv6 added) moves the shim in place, routed, pinged both
// ways; a shim set down is set up with its addresses again at once, one
// whose addresses were flushed gets them back on the next start, as does
// one whose move the agent was killed in once the new addresses were
// stored.
func TestHostShimUpdateAddrs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.a
	a.ok("network", "create", "--subnet=10.91.0.0/24", "--ipv6", "--subnet=fd91::/64", "-o", "parent=eth0", "-o", "host_shim=10.91.0.2", "un")
	c := e.runD(e.name("1"), "un")
	bad := c.Addrs[0].Addr().String()
	if _, errs, code := a.mv("network", "update", "-o", "host_shim="+bad, "un"); code != 1 || !strings.Contains(errs, bad) {
		t.Fatalf("update to the container's %s: exit %d, %q; want 1 and a message naming it", bad, code, errs)
	}
	mustContain(t, "shim after the refused update", e.in(e.sb.Path, "ip", "addr", "show", "dev", "mvh-un"), "inet 10.91.0.2/32")
	if n := a.inspectNet("un"); n.HostShim == nil || n.Options["host_shim"] != "10.91.0.2" {
		t.Fatalf("the refused update changed the shim: %+v %v", n.HostShim, n.Options)
	}
	a.ok("network", "update", "-o", "host_shim=10.91.0.60,fd91::60", "un")
	moved := []netip.Addr{addr("10.91.0.60"), addr("fd91::60")}
	out := e.in(e.sb.Path, "ip", "addr", "show", "dev", "mvh-un")
	mustContain(t, "moved shim", out, "inet 10.91.0.60/32", "inet6 fd91::60/128")
	if strings.Contains(out, "10.91.0.2/") {
		t.Fatalf("the moved shim still has its old address:\n%s", out)
	}
	shimPings(t, e, moved, c)
	if d := drift(t, a); len(d) > 0 {
		t.Fatalf("drift after the move: %v", d)
	}
	// Down (the kernel takes its IPv6 address): the link event has the
	// agent set it up with its address again.
	e.in(e.sb.Path, "ip", "link", "set", "mvh-un", "down")
	if !waitFor(5*time.Second, func() bool {
		out, err := nstest.RunErr(e.sb.Path, "ip", "addr", "show", "dev", "mvh-un")
		return err == nil && strings.Contains(out, "inet6 fd91::60/128") && strings.Contains(out, ",UP,")
	}) {
		t.Fatalf("the shim set down is not up with its IPv6 address again:\n%s", e.in(e.sb.Path, "ip", "addr", "show", "dev", "mvh-un"))
	}
	// Flushed (no link event): the next start puts the addresses back.
	e.in(e.sb.Path, "ip", "addr", "flush", "dev", "mvh-un", "scope", "global")
	a.stop()
	a.start()
	mustContain(t, "shim after start", e.in(e.sb.Path, "ip", "addr", "show", "dev", "mvh-un"), "inet 10.91.0.60/32", "inet6 fd91::60/128")
	shimPings(t, e, moved, c)
	if d := drift(t, a); len(d) > 0 {
		t.Fatalf("drift after start: %v", d)
	}

	// Killed once the new addresses are stored: the start finishes the move.
	a.stop()
	a.start("MVLAN_TEST_CRASHPOINT=shim-move:after-state")
	a.mv("network", "update", "-o", "host_shim=10.91.0.70,fd91::60", "un")
	a.waitExit()
	a.start()
	out = e.in(e.sb.Path, "ip", "addr", "show", "dev", "mvh-un")
	mustContain(t, "shim after a crash in the move", out, "inet 10.91.0.70/32", "inet6 fd91::60/128")
	if strings.Contains(out, "10.91.0.60/") {
		t.Fatalf("after a crash in the move the shim still has its old address:\n%s", out)
	}
	shimPings(t, e, []netip.Addr{addr("10.91.0.70"), addr("fd91::60")}, c)
	if d := drift(t, a); len(d) > 0 {
		t.Fatalf("drift after a crash in the move: %v", d)
	}
}

// TestHostShimRepaired: what is taken from a shim without a link event
// (its addresses flushed, which takes its IPv4 routes with them; a route
// deleted) is put back within two of the agent's looks (5 s apart), and the host
// reaches its container again.
func TestHostShimRepaired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.a
	a.ok("network", "create", "--subnet=10.87.0.0/24", "-o", "parent=eth0", "-o", "host_shim=auto", "nr")
	c := e.runD(e.name("r"), "nr")
	shim := a.inspectNet("nr").HostShim
	shimPings(t, e, shim.Addrs, c)
	want := hostAddrs(c)
	for _, take := range [][]string{
		{"ip", "addr", "flush", "dev", shim.Link},
		{"ip", "route", "del", want[0], "dev", shim.Link, "proto", "109"},
	} {
		e.in(e.sb.Path, take...)
		if got := shimRoutes(t, e.sb, shim.Link); slices.Equal(got, want) {
			t.Fatalf("%v took nothing: routes %v", take, got)
		}
		for deadline := time.Now().Add(15 * time.Second); !slices.Equal(shimRoutes(t, e.sb, shim.Link), want); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after %v: routes through %s %v 15 s later; want %v put back\n%s", take, shim.Link, shimRoutes(t, e.sb, shim.Link), want, a.log)
			}
		}
		shimPings(t, e, shim.Addrs, c)
	}
}
