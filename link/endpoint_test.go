package link_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestAttachEndpoint(t *testing.T) {
	tests := []struct {
		name       string
		addrs      [2][]string // the two endpoints' addresses
		gws        []string
		wantRoutes []string // in `ip route` / `ip -6 route` of the first endpoint
	}{
		{
			name:  "ipv4",
			addrs: [2][]string{{"172.16.86.10/24"}, {"172.16.86.11/24"}},
			gws:   []string{"172.16.86.1"},
			wantRoutes: []string{"default via 172.16.86.1 dev eth0",
				"172.16.86.0/24 dev eth0 proto kernel scope link src 172.16.86.10"},
		},
		{
			name:  "dual-stack",
			addrs: [2][]string{{"172.16.86.10/24", "2001:db8:abc8::10/64"}, {"172.16.86.11/24", "2001:db8:abc8::11/64"}},
			gws:   []string{"172.16.86.1", "2001:db8:abc8::1"},
			wantRoutes: []string{"default via 172.16.86.1 dev eth0", "default via 2001:db8:abc8::1 dev eth0",
				"2001:db8:abc8::/64 dev eth0 proto kernel"},
		},
		{
			name:  "internal-no-gateway",
			addrs: [2][]string{{"10.1.100.10/24"}, {"10.1.100.11/24"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := nstest.NewSandbox(t)
			h := openHost(t, sb)
			wire := nstest.NewCapture(t, sb.WirePath, "wire0")
			var specs [2]link.EndpointSpec
			for i := range specs {
				specs[i] = link.EndpointSpec{
					Parent: "eth0", NetnsPath: sb.Netns(t, fmt.Sprintf("c%d", i+1)),
					MAC:   mac(t, fmt.Sprintf("02:42:ac:10:56:%02x", 10+i)),
					Addrs: prefixes(tt.addrs[i]...), Gateways: addrs(tt.gws...),
					Alias:    fmt.Sprintf("mvlan/test/ep/%d", i+1),
					AcceptRA: i == 1,
					// The second is born without IPv6, as in a spare.
					IPv6Off: i == 1,
				}
				// The first is too, unknown to the attach: a namespace a
				// spare made, into which an IPv6 endpoint is connected.
				sb.Run(t, specs[i].NetnsPath, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
				if err := h.AttachEndpoint(context.Background(), specs[i]); err != nil {
					t.Fatal(err)
				}
			}
			checkEndpoint(t, sb, specs[0], tt.wantRoutes)
			checkEndpoint(t, sb, specs[1], nil)
			checkAnnounced(t, wire, specs[0])
			for _, p := range specs[1].Addrs {
				if err := nstest.Ping(specs[0].NetnsPath, p.Addr(), 2, 2*time.Second); err != nil {
					t.Error(err)
				}
			}
			for _, s := range specs {
				if err := h.DetachEndpoint(context.Background(), s.NetnsPath, "eth0"); err != nil {
					t.Fatal(err)
				}
				sameLinks(t, h, s.NetnsPath, []string{"lo"})
			}
			sameLinks(t, h, "", []string{"eth0", "lo"})
		})
	}
}

// checkEndpoint verifies the link, addresses, routes and IPv6 setting of an
// attached endpoint as `ip` shows them inside its namespace.
func checkEndpoint(t *testing.T, sb *nstest.Sandbox, s link.EndpointSpec, routes []string) {
	t.Helper()
	infos, err := link.EndpointLinks(s.NetnsPath)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, in := range infos {
		if in.Name == "eth0" {
			found = true
			if in.Kind != "macvlan" || in.Alias != s.Alias || !in.Up || !bytes.Equal(in.MAC, s.MAC) {
				t.Errorf("endpoint link = %+v; want an up macvlan with alias %q and MAC %s", in, s.Alias, s.MAC)
			}
		}
	}
	if !found {
		t.Fatalf("no eth0 in %s: %+v", s.NetnsPath, infos)
	}
	out := sb.Run(t, s.NetnsPath, "ip", "route") + sb.Run(t, s.NetnsPath, "ip", "-6", "route")
	mustContain(t, "routes", out, routes...)
	out = sb.Run(t, s.NetnsPath, "ip", "addr", "show", "eth0")
	for _, p := range s.Addrs {
		mustContain(t, "addresses", out, p.String())
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, p.String()) && strings.Contains(line, "tentative") {
				t.Errorf("%s is tentative (DAD): %s", p, line)
			}
		}
	}
	v6 := strings.Contains(fmt.Sprint(s.Addrs), ":")
	if got := sysctl(t, sb, s.NetnsPath, "ipv6/conf/eth0/disable_ipv6"); (got == "1") == v6 {
		t.Errorf("disable_ipv6 = %s with addresses %v", got, s.Addrs)
	}
	if !v6 {
		return
	}
	if got, want := sysctl(t, sb, s.NetnsPath, "ipv6/conf/eth0/accept_ra"), map[bool]string{false: "0", true: "1"}[s.AcceptRA]; got != want {
		t.Errorf("accept_ra = %s with AcceptRA %v, want %s", got, s.AcceptRA, want)
	}
}

// checkAnnounced waits on the wire for the gratuitous ARP (the RFC 5227
// request) and unsolicited NA of every address of s, in any order.
func checkAnnounced(t *testing.T, wire *nstest.Capture, s link.EndpointSpec) {
	t.Helper()
	want := map[netip.Addr][]byte{}
	for _, p := range s.Addrs {
		want[p.Addr()] = link.GratuitousARP(s.MAC, p.Addr(), false)
		if p.Addr().Is6() {
			want[p.Addr()] = link.UnsolicitedNA(s.MAC, p.Addr())
		}
	}
	_, err := wire.Wait(2*time.Second, func(f []byte) bool {
		for a, w := range want {
			if bytes.HasPrefix(f, w) {
				delete(want, a)
			}
		}
		return len(want) == 0
	})
	for a := range want {
		t.Errorf("announcement of %s not seen on the wire: %v", a, err)
	}
}

// TestAttachEndpointParentIndex: the link goes on the parent whether the
// caller gives the parent's ifindex, none, or one that is no link's any
// more (the parent made again since): then AttachEndpoint looks it up.
func TestAttachEndpointParentIndex(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	parent, err := h.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	sb.Run(t, sb.Path, "ip", "link", "add", "gone0", "type", "veth", "peer", "name", "gone1")
	gone, err := h.Link("gone0")
	if err != nil {
		t.Fatal(err)
	}
	sb.Run(t, sb.Path, "ip", "link", "del", "gone0")
	sb.Run(t, sb.Path, "ip", "link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "bridge")
	for i, tt := range []struct {
		name, parent string
		index        int
	}{{"known", "eth0", parent.Index}, {"unknown", "eth0", 0}, {"stale", "eth0", gone.Index},
		// A macvlan parent: the link goes on its lower link's port, whose
		// index it reports.
		{"macvlan parent unknown", "mv0", 0}, {"macvlan parent stale", "mv0", gone.Index}} {
		t.Run(tt.name, func(t *testing.T) {
			s := link.EndpointSpec{Parent: tt.parent, ParentIndex: tt.index, NetnsPath: sb.Netns(t, strings.ReplaceAll(tt.name, " ", "-")),
				MAC: mac(t, fmt.Sprintf("02:42:ac:10:57:%02x", 10+i)), Addrs: prefixes(fmt.Sprintf("172.16.87.%d/24", 10+i)),
				Alias: "mvlan/test/ep/" + strings.ReplaceAll(tt.name, " ", "-")}
			if err := h.AttachEndpoint(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			infos, err := link.EndpointLinks(s.NetnsPath)
			if err != nil {
				t.Fatal(err)
			}
			var got []link.Info
			for _, in := range infos {
				if in.Name == "eth0" {
					got = append(got, in)
				}
			}
			if len(got) != 1 || got[0].ParentIndex != parent.Index || !bytes.Equal(got[0].MAC, s.MAC) {
				t.Fatalf("eth0 in %s: %+v; want the macvlan with MAC %s on eth0 (ifindex %d)", s.NetnsPath, got, s.MAC, parent.Index)
			}
		})
	}
}

// TestAttachEndpointBeforeUp: BeforeUp runs on the slave still down,
// with its addresses, and a failure of it rolls the slave back.
func TestAttachEndpointBeforeUp(t *testing.T) {
	for _, hookErr := range []error{nil, errors.New("no datapath")} {
		t.Run(fmt.Sprint(hookErr), func(t *testing.T) {
			sb := nstest.NewSandbox(t)
			h := openHost(t, sb)
			s := link.EndpointSpec{Parent: "eth0", NetnsPath: sb.Netns(t, "c1"), MAC: mac(t, "02:42:ac:10:56:0a"),
				Addrs: prefixes("172.16.86.10/24"), Alias: "mvlan/test/ep/1"}
			seen := "never"
			s.BeforeUp = func(idx int) error {
				seen = "gone"
				infos, err := link.EndpointLinks(s.NetnsPath)
				if err != nil {
					return err
				}
				for _, in := range infos {
					if in.Index == idx {
						seen = map[bool]string{false: "down", true: "up"}[in.Up]
					}
				}
				return hookErr
			}
			err := h.AttachEndpoint(context.Background(), s)
			if seen != "down" {
				t.Errorf("BeforeUp saw the slave %s; want it there, down", seen)
			}
			if hookErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkEndpoint(t, sb, s, nil)
				return
			}
			if !errors.Is(err, hookErr) {
				t.Fatalf("attach: %v; want BeforeUp's error", err)
			}
			sameLinks(t, h, s.NetnsPath, []string{"lo"})
		})
	}
}

// TestAttachEndpointMACBusyWait: while another macvlan on the parent has
// the MAC, up fails (EADDRINUSE) and the slave is rolled back; with
// MACBusyWait the attach waits for that link to go (deleted a moment
// later, as a namespace's the kernel destroys) and succeeds.
func TestAttachEndpointMACBusyWait(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	const m = "02:42:ac:10:56:0a"
	sb.Run(t, sb.Path, "ip", "link", "add", "going", "link", "eth0", "address", m, "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", "going", "up")
	s := link.EndpointSpec{Parent: "eth0", NetnsPath: sb.Netns(t, "c1"), MAC: mac(t, m),
		Addrs: prefixes("172.16.86.10/24"), Alias: "mvlan/test/ep/1"}
	if err := h.AttachEndpoint(context.Background(), s); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("attach with a MAC another link on the parent has, no wait: %v; want EADDRINUSE", err)
	}
	sameLinks(t, h, s.NetnsPath, []string{"lo"})
	s.MACBusyWait = 10 * time.Second
	const after = 200 * time.Millisecond
	deleted := make(chan error, 1)
	go func() {
		time.Sleep(after)
		out, err := nstest.RunErr(sb.Path, "ip", "link", "del", "going")
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		deleted <- err
	}()
	t0 := time.Now()
	err := h.AttachEndpoint(context.Background(), s)
	if derr := <-deleted; derr != nil {
		t.Fatalf("ip link del going: %v", derr)
	}
	if err != nil {
		t.Fatalf("attach with MACBusyWait while the other link goes: %v", err)
	}
	if d := time.Since(t0); d < after {
		t.Errorf("attach took %v; the other link went only after %v", d, after)
	}
	checkEndpoint(t, sb, s, nil)
}
