package main

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// udpTo sends n datagrams from namespace from to 10.99.0.1:9999, where a
// socket of the sandbox host listens, and returns how many it received.
func udpTo(t *testing.T, e *dpEnv, from string, n int) int {
	t.Helper()
	var ln net.PacketConn
	if err := nstest.In(e.sb.Path, func() (err error) {
		ln, err = net.ListenPacket("udp4", "10.99.0.1:9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := nstest.In(from, func() error {
		c, err := net.Dial("udp4", "10.99.0.1:9999")
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range n {
			if _, err := c.Write(fmt.Appendf(nil, "datagram %d", i)); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := 0
	buf := make([]byte, 64)
	for got < n {
		_ = ln.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := ln.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	return got
}

// TestHostShimRoute: a container may not use the host as its router
// through its network's host shim. On hr (host_shim=auto) a container
// with a route to 10.99.0.1 (an address of the sandbox host on its lo,
// not the shim's) via the shim reaches nothing: each datagram is dropped
// on the shim's ingress and counted once as host_route, also sent in
// broadcast frames, while the shim's own address answers pings. On hra (host_shim=auto, allow_router=true)
// the host is the containers' router by choice: the same datagrams
// arrive, and a ping forwarded on to hr's container leaves hr's shim with
// hra's source and is dropped there as ip_spoof. (The host's answers from
// 10.99.0.1 would be ip_spoof on hra's shim too: one way only.)
func TestHostShimRoute(t *testing.T) {
	t.Parallel()
	const sent = 3
	e := newDPEnv(t, dpModes[0], "eth1")
	a := e.a
	a.ok("network", "create", "--subnet=10.78.0.0/24", "-o", "parent=eth0", "-o", "host_shim=auto", "hr")
	a.ok("network", "create", "--subnet=10.79.0.0/24", "-o", "parent=eth1", "-o", "host_shim=auto", "-o", "allow_router=true", "hra")
	c1 := e.runD(e.name("1"), "hr", "--ip=10.78.0.10")
	c2 := e.runD(e.name("2"), "hra", "--ip=10.79.0.10")
	e.in(e.sb.Path, "ip", "addr", "add", "10.99.0.1/32", "dev", "lo") // no dummy links in every kernel
	e.in(e.sb.Path, "sysctl", "-qw", "net.ipv4.ip_forward=1")         // as Docker sets it
	e.in(c1.Netns, "ip", "route", "add", "10.99.0.1/32", "via", "10.78.0.2")
	e.in(c2.Netns, "ip", "route", "add", "10.99.0.1/32", "via", "10.79.0.2")
	e.in(c2.Netns, "ip", "route", "add", "10.78.0.0/24", "via", "10.79.0.2")

	v := e.view("", "")
	drops := func(net, reason string) uint64 {
		return counter(v.scrape(), "mvlan_policy_drops_total", map[string]string{"network": net, "reason": reason})
	}
	// want: the drops of net for reason move by exactly n.
	want := func(what, net, reason string, before, n uint64) {
		t.Helper()
		waitFor(2*time.Second, func() bool { return drops(net, reason) >= before+n })
		if d := drops(net, reason) - before; d != n {
			t.Errorf("%s: mvlan_policy_drops_total{network=%q,reason=%q} moved by %d, want exactly %d", what, net, reason, d, n)
		}
	}

	out, err := e.pingFrom(c1.Netns, "10.78.0.2", false)
	e.wantPingOK("hr container -> its shim 10.78.0.2", out, exitOf(err))
	out, err = e.pingFrom(c2.Netns, "10.79.0.2", false)
	e.wantPingOK("hra container -> its shim 10.79.0.2", out, exitOf(err))

	before := drops("hr", "host_route")
	if got := udpTo(t, e, c1.Netns, sent); got != 0 {
		t.Errorf("hr container -> the host's 10.99.0.1 through the shim: %d of %d datagrams received, want 0 (the host routes for it)", got, sent)
	}
	want("hr container -> 10.99.0.1", "hr", "host_route", before, sent)
	// The same in broadcast frames (the container makes the shim's
	// neighbour entry ff:ff:ff:ff:ff:ff): the host takes unicast IP in a
	// broadcast frame on any of its addresses, so the check holds there.
	e.in(c1.Netns, "ip", "neigh", "replace", "10.78.0.2", "lladdr", "ff:ff:ff:ff:ff:ff", "nud", "permanent", "dev", "eth0")
	before = drops("hr", "host_route")
	if got := udpTo(t, e, c1.Netns, sent); got != 0 {
		t.Errorf("hr container -> the host's 10.99.0.1 in broadcast frames: %d of %d datagrams received, want 0", got, sent)
	}
	want("hr container -> 10.99.0.1 in broadcast frames", "hr", "host_route", before, sent)
	e.in(c1.Netns, "ip", "neigh", "del", "10.78.0.2", "dev", "eth0")

	before = drops("hra", "host_route")
	if got := udpTo(t, e, c2.Netns, sent); got != sent {
		t.Errorf("hra (allow_router) container -> the host's 10.99.0.1 through the shim: %d of %d datagrams received", got, sent)
	}
	want("hra container -> 10.99.0.1", "hra", "host_route", before, 0)

	before = drops("hr", "ip_spoof")
	if out, err := e.pingFrom(c2.Netns, "10.78.0.10", true); err == nil {
		t.Errorf("hra container -> hr's container through the host works:\n%s", out)
	}
	want("hra container -> hr container, forwarded", "hr", "ip_spoof", before, 2)
}
