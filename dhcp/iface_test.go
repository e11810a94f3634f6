package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// rogueEth0 does what a container that is root in its namespace can: it
// renames the endpoint's link (eth0) to real0 and gives the name eth0 to
// a veth whose other end, in a namespace of the test, has a DHCP server
// of its own (dnsmasq with flags, on rogue0 with addr). It returns that
// namespace.
func rogueEth0(t *testing.T, sb *nstest.Sandbox, addr string, flags ...string) string {
	t.Helper()
	rogue := sb.Netns(t, "rogue")
	sb.Run(t, sb.Path, "ip", "link", "set", "eth0", "down")
	sb.Run(t, sb.Path, "ip", "link", "set", "eth0", "name", "real0")
	sb.Run(t, sb.Path, "ip", "link", "set", "real0", "up")
	sb.Run(t, sb.Path, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "rogue0", "netns", rogue)
	sb.Run(t, sb.Path, "ip", "link", "set", "eth0", "up")
	sb.Run(t, rogue, "ip", "link", "set", "rogue0", "up")
	sb.Run(t, rogue, "ip", "addr", "add", addr, "dev", "rogue0", "nodad")
	nstest.StartDnsmasq(t, rogue, "rogue0", flags...)
	return rogue
}

// TestClientBindsByIndex: the clients talk on the endpoint's link (by its
// index), not on whatever link the container names as it (a veth to a
// server of its own that hands out 10.66.0.x / fd00:66::x), and refuse a
// link at that index that is not the endpoint's: another MAC, or not a
// macvlan of the parent. The clients take any subnet here, so only the
// link decides whose address they get.
func TestClientBindsByIndex(t *testing.T) {
	ctx := context.Background()
	t.Run("v4", func(t *testing.T) {
		sb, l := sandbox4(t, "192.168.62.1/24")
		srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)
		l.Subnet = netip.Prefix{}
		rogueEth0(t, sb, "10.66.0.1/24", "--dhcp-authoritative", "--dhcp-range=10.66.0.100,10.66.0.150,255.255.255.0,2m")
		lease, err := Acquire(ctx, l)
		if err != nil {
			t.Fatalf("acquire: %v\n%s", err, srv.Log())
		}
		if !lan4.Contains(lease.Addr.Addr()) || lease.Server != netip.MustParseAddr("192.168.62.1") {
			t.Fatalf("leased %s from %s, want an address of %s from 192.168.62.1 (the endpoint link's server)", lease.Addr, lease.Server, lan4)
		}
		bad := l
		bad.MAC = append(bad.MAC[:0:0], bad.MAC...)
		bad.MAC[5] ^= 1
		if _, err := Renew(ctx, bad, lease); !errors.Is(err, ErrNotEndpoint) {
			t.Fatalf("renew with another MAC than the link's: %v, want ErrNotEndpoint", err)
		}
		bad = l
		bad.Parent = 1 // eth0 here is a veth, no macvlan of the host's link 1
		if err := Release(ctx, bad, lease); !errors.Is(err, ErrNotEndpoint) {
			t.Fatalf("release on a link that is no macvlan of the parent: %v, want ErrNotEndpoint", err)
		}
	})
	t.Run("v6", func(t *testing.T) {
		sb := nstest.NewSandbox(t)
		sb.Run(t, sb.WirePath, "ip", "addr", "add", "fd00:60::1/64", "dev", "wire0", "nodad")
		srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", "--dhcp-authoritative", "--dhcp-range=fd00:60::10,fd00:60::20,64,2m")
		l := linkOf(t, sb.Path, "eth0", Link{ClientID: DUID6("net", "c1")})
		rogueEth0(t, sb, "fd00:66::1/64", "--dhcp-authoritative", "--dhcp-range=fd00:66::10,fd00:66::20,64,2m")
		lease, err := Acquire6(ctx, l)
		if err != nil {
			t.Fatalf("acquire: %v\n%s", err, srv.Log())
		}
		if want := netip.MustParsePrefix("fd00:60::/64"); !want.Contains(lease.Addr.Addr()) {
			t.Fatalf("leased %s, want an address of %s (the endpoint link's server)", lease.Addr, want)
		}
	})
}

// TestClientChecksParentNamespace: with a parent, the client takes only a
// macvlan whose lower link is the parent in the caller's (the host's)
// namespace. A container that can make namespaces puts a veth at the
// parent's index in one of its own, a macvlan of it with the endpoint's
// MAC at the endpoint's index in its namespace (the real link deleted),
// and a server of its own behind the veth: refused, where the index,
// MAC and "lower in another namespace" alone would take it.
func TestClientChecksParentNamespace(t *testing.T) {
	ctx := context.Background()
	sb := nstest.NewSandbox(t)
	sb.Run(t, sb.WirePath, "ip", "addr", "add", "192.168.62.1/24", "dev", "wire0")
	srv := nstest.StartDnsmasq(t, sb.WirePath, "wire0", dnsmasqFlags...)
	ctr := sb.Netns(t, "ctr")
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "mv0", "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", "mv0", "netns", ctr)
	sb.Run(t, ctr, "ip", "link", "set", "mv0", "name", "eth0", "up")
	parent := linkOf(t, sb.Path, "eth0", Link{}).Ifindex
	l := linkOf(t, ctr, "eth0", Link{ClientID: ClientID("net", "c1"), Parent: parent})
	acquire := func() (lease Lease, err error) {
		err = nstest.In(sb.Path, func() error { // the agent runs in the host's namespace
			lease, err = Acquire(ctx, l)
			return err
		})
		return lease, err
	}
	lease, err := acquire()
	if err != nil {
		t.Fatalf("acquire on the endpoint's macvlan: %v\n%s", err, srv.Log())
	}
	if !lan4.Contains(lease.Addr.Addr()) {
		t.Fatalf("leased %s, want an address of %s", lease.Addr, lan4)
	}

	fake, rogue := sb.Netns(t, "fake"), sb.Netns(t, "rogue")
	sb.Run(t, fake, "ip", "link", "add", "fk0", "index", fmt.Sprint(parent), "type", "veth", "peer", "name", "rogue0", "netns", rogue)
	sb.Run(t, fake, "ip", "link", "add", "link", "fk0", "name", "mvfake", "index", fmt.Sprint(l.Ifindex),
		"address", l.MAC.String(), "type", "macvlan", "mode", "bridge")
	sb.Run(t, fake, "ip", "link", "set", "fk0", "up")
	sb.Run(t, ctr, "ip", "link", "del", "eth0")
	sb.Run(t, fake, "ip", "link", "set", "mvfake", "netns", ctr)
	sb.Run(t, ctr, "ip", "link", "set", "mvfake", "name", "eth0", "up")
	sb.Run(t, rogue, "ip", "link", "set", "rogue0", "up")
	sb.Run(t, rogue, "ip", "addr", "add", "10.66.0.1/24", "dev", "rogue0", "nodad")
	nstest.StartDnsmasq(t, rogue, "rogue0", "--dhcp-authoritative", "--dhcp-range=10.66.0.100,10.66.0.150,255.255.255.0,2m")
	if got := linkOf(t, ctr, "eth0", Link{}); got.Ifindex != l.Ifindex || got.MAC.String() != l.MAC.String() {
		t.Fatalf("the fake link is %d %s, want the endpoint's index and MAC %d %s", got.Ifindex, got.MAC, l.Ifindex, l.MAC)
	}
	l.Subnet = netip.Prefix{} // only the link decides
	if lease, err := acquire(); !errors.Is(err, ErrNotEndpoint) {
		t.Fatalf("acquire on a macvlan of a link in the container's own namespace: lease %s, err %v; want ErrNotEndpoint", lease.Addr, err)
	}
}
