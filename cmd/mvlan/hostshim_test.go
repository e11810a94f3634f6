package main

// Privileged end-to-end tests of the host shim (-o host_shim, issue 17):
// the sandbox's host namespace reaches its own containers through a
// macvlan of its own on the network's parent.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

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
	e := newEnv(t)
	a := e.a
	a.ok("network", "create", "--subnet=10.77.0.0/24", "--ipv6", "--subnet=fd77::/64", "-o", "parent=eth0", "-o", "host_shim=auto", "shimnet")
	n := a.inspectNet("shimnet")
	want := []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("fd77::2")}
	if n.HostShim == nil || n.HostShim.Link != "mvh-shimnet" || !slices.Equal(n.HostShim.Addrs, want) || n.HostShim.Status != "ok" {
		t.Fatalf("inspect host_shim = %+v; want mvh-shimnet with %v, ok", n.HostShim, want)
	}
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

	before := a.shimStats("shimnet")
	shimPings(t, e, want, c1, c2)
	after := a.shimStats("shimnet")
	// 2 containers x 2 families x 4 echo requests each way.
	if d := after.Tx.Packets - before.Tx.Packets; d < 32 {
		t.Errorf("shim tx packets moved by %d, want at least 32 (16 requests, 16 replies)", d)
	}
	if d := after.Rx.Packets - before.Rx.Packets; d < 32 {
		t.Errorf("shim rx packets moved by %d, want at least 32", d)
	}
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
