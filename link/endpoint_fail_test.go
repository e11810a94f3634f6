package link_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestAttachEndpointFailure makes AttachEndpoint fail before, during and
// after the move into the container and checks that no slave is left in
// either namespace (and that nothing foreign was removed).
func TestAttachEndpointFailure(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		edit    func(s *link.EndpointSpec)
		setup   func(t *testing.T, sb *nstest.Sandbox, ns string) // runs before the attach
		wantErr string
		wantIn  []string // links left in the container namespace
		isErr   error
	}{
		{name: "missing netns", edit: func(s *link.EndpointSpec) { s.NetnsPath = "/run/netns/mvt-no-such-ns" },
			wantErr: "mvt-no-such-ns", isErr: link.ErrNotFound},
		{name: "missing parent", edit: func(s *link.EndpointSpec) { s.Parent = "eth9" },
			wantErr: "eth9", isErr: link.ErrNotFound},
		{name: "gateway outside the subnet", edit: func(s *link.EndpointSpec) { s.Gateways = addrs("10.9.9.1") },
			wantErr: "add default route via 10.9.9.1"},
		{name: "v6 gateway outside the subnet",
			edit: func(s *link.EndpointSpec) {
				s.Addrs = prefixes("172.16.86.10/24", "2001:db8:1::10/64")
				s.Gateways = addrs("172.16.86.1", "2001:db8:2::1")
			},
			wantErr: "add default route via 2001:db8:2::1"},
		{name: "interface name taken", wantErr: "eth0 in", isErr: link.ErrExists, wantIn: []string{"eth0", "lo"},
			setup: func(t *testing.T, sb *nstest.Sandbox, ns string) {
				sb.Run(t, ns, "ip", "link", "add", "name", "eth0", "type", "bridge")
			}},
		{name: "interface name taken, passthru", wantErr: "rename", wantIn: []string{"eth0", "lo"},
			edit: func(s *link.EndpointSpec) { s.Mode = "passthru" },
			setup: func(t *testing.T, sb *nstest.Sandbox, ns string) {
				sb.Run(t, ns, "ip", "link", "add", "name", "eth0", "type", "bridge")
			}},
		{name: "duplicate address", wantErr: "add address 172.16.86.10/24",
			edit: func(s *link.EndpointSpec) { s.Addrs = prefixes("172.16.86.10/24", "172.16.86.10/24") }},
		{name: "cancelled", ctx: cancelled, wantErr: "context canceled", isErr: context.Canceled},
		{name: "bad mode", edit: func(s *link.EndpointSpec) { s.Mode = "bridged" }, wantErr: `macvlan_mode "bridged" is unknown`},
		{name: "multicast MAC", edit: func(s *link.EndpointSpec) { s.MAC = mac(t, "01:00:5e:00:00:01") }, wantErr: "not a unicast"},
		{name: "two v4 gateways", edit: func(s *link.EndpointSpec) { s.Gateways = addrs("172.16.86.1", "172.16.86.2") },
			wantErr: "at most one"},
		{name: "v6 gateway without v6 address", edit: func(s *link.EndpointSpec) { s.Gateways = addrs("2001:db8::1") },
			wantErr: "no address of its family"},
	}
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := sb.Netns(t, fmt.Sprintf("f%d", i))
			if tt.setup != nil {
				tt.setup(t, sb, ns)
			}
			s := link.EndpointSpec{Parent: "eth0", NetnsPath: ns, MAC: mac(t, "02:42:ac:10:56:0a"),
				Addrs: prefixes("172.16.86.10/24"), Gateways: addrs("172.16.86.1"), Alias: "mvlan/test/ep/f"}
			if tt.edit != nil {
				tt.edit(&s)
			}
			err := h.AttachEndpoint(cmpCtx(tt.ctx), s)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.isErr != nil && !errors.Is(err, tt.isErr)) {
				t.Fatalf("AttachEndpoint error = %v; want one containing %q (is %v)", err, tt.wantErr, tt.isErr)
			}
			sameLinks(t, h, "", []string{"eth0", "lo"})
			sameLinks(t, h, ns, append([]string(nil), cmpSlice(tt.wantIn, []string{"lo"})...))
		})
	}
}

func cmpCtx(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func cmpSlice(a, b []string) []string {
	if a != nil {
		return a
	}
	return b
}

func TestDetachEndpointMissing(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	ctx := context.Background()
	if err := h.DetachEndpoint(ctx, sb.Netns(t, "c1"), "eth0"); err != nil {
		t.Errorf("detach of a missing link = %v; want nil", err)
	}
	if err := h.DetachEndpoint(ctx, "/run/netns/mvt-no-such-ns", "eth0"); err != nil {
		t.Errorf("detach in a missing namespace = %v; want nil", err)
	}
}

// TestDetachLinkByIndex: DetachLink deletes the link at the index it is
// given, renamed since, and leaves the link a container put under the old
// name; a missing link or namespace is no error.
func TestDetachLinkByIndex(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	ctx := context.Background()
	c1 := sb.Netns(t, "c1")
	sb.Run(t, c1, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p0")
	idx := ifindexIn(t, sb, c1, "eth0")
	sb.Run(t, c1, "ip", "link", "set", "eth0", "name", "x0")
	sb.Run(t, c1, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "p1")
	if err := h.DetachLink(ctx, c1, idx); err != nil {
		t.Fatal(err)
	}
	out := sb.Run(t, c1, "ip", "-o", "link", "show")
	if strings.Contains(out, "x0@") || !strings.Contains(out, "eth0@") {
		t.Errorf("after DetachLink(%d): want x0 (the link at it, renamed) gone and the new eth0 kept:\n%s", idx, out)
	}
	if err := h.DetachLink(ctx, c1, idx); err != nil {
		t.Errorf("detach of a missing link = %v; want nil", err)
	}
	if err := h.DetachLink(ctx, "/run/netns/mvt-no-such-ns", idx); err != nil {
		t.Errorf("detach in a missing namespace = %v; want nil", err)
	}
}

// ifindexIn is the index of link name in namespace ns, read with iproute2.
func ifindexIn(t *testing.T, sb *nstest.Sandbox, ns, name string) int {
	t.Helper()
	f := strings.SplitN(sb.Run(t, ns, "ip", "-o", "link", "show", "dev", name), ":", 2)
	idx, err := strconv.Atoi(strings.TrimSpace(f[0]))
	if err != nil {
		t.Fatalf("index of %s in %s: %v", name, ns, err)
	}
	return idx
}

// TestAttachEndpointModes checks that each macvlan mode reaches the kernel,
// and that the interface name is the caller's.
func TestAttachEndpointModes(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	for i, mode := range []string{"bridge", "private", "vepa", "passthru"} {
		t.Run(mode, func(t *testing.T) {
			ns := sb.Netns(t, mode)
			s := link.EndpointSpec{Parent: "eth0", Mode: mode, NetnsPath: ns, IfName: "net1",
				MAC:   mac(t, fmt.Sprintf("02:42:ac:10:57:%02x", i)),
				Addrs: prefixes(fmt.Sprintf("172.16.87.%d/24", 10+i)), Alias: "mvlan/test/ep/" + mode}
			if err := h.AttachEndpoint(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			out := sb.Run(t, ns, "ip", "-d", "link", "show", "net1")
			mustContain(t, "ip -d link show net1", out, "macvlan mode "+mode, s.MAC.String())
			if parent, err := h.Link("eth0"); err != nil || (mode == "passthru") != bytes.Equal(parent.MAC, s.MAC) {
				t.Errorf("parent MAC %s (%v): only passthru shares the endpoint's MAC %s", parent.MAC, err, s.MAC)
			}
			if err := h.DetachEndpoint(context.Background(), ns, "net1"); err != nil {
				t.Fatal(err)
			}
			sameLinks(t, h, ns, []string{"lo"})
		})
	}
}

// TestAttachEndpointConcurrent attaches many endpoints through one Host at
// once, as parallel `mvlan run -d` do.
func TestAttachEndpointConcurrent(t *testing.T) {
	const n = 16
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	var nss [n]string
	for i := range nss {
		nss[i] = sb.Netns(t, fmt.Sprintf("p%d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = h.AttachEndpoint(context.Background(), link.EndpointSpec{
				Parent: "eth0", NetnsPath: nss[i], MAC: mac(t, fmt.Sprintf("02:42:ac:10:58:%02x", i)),
				Addrs: prefixes(fmt.Sprintf("172.16.88.%d/24", 10+i)), Gateways: addrs("172.16.88.1"),
				Alias: fmt.Sprintf("mvlan/test/ep/p%d", i),
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	if err := nstest.Ping(nss[0], netip4(t, fmt.Sprintf("172.16.88.%d", 10+n-1)), 1, 2*time.Second); err != nil {
		t.Error(err)
	}
	sameLinks(t, h, "", []string{"eth0", "lo"})
}

// TestHostOnlyNetwork attaches two endpoints to a host-only link (a network
// without parent) and pings between them.
func TestHostOnlyNetwork(t *testing.T) {
	sb := nstest.NewSandbox(t)
	h := openHost(t, sb)
	if _, err := h.CreateHostOnly(context.Background(), "mvh-int", "mvlan/test/net/int"); err != nil {
		t.Fatal(err)
	}
	var nss [2]string
	for i := range nss {
		nss[i] = sb.Netns(t, fmt.Sprintf("h%d", i))
		err := h.AttachEndpoint(context.Background(), link.EndpointSpec{
			Parent: "mvh-int", NetnsPath: nss[i], MAC: mac(t, fmt.Sprintf("02:42:0a:01:64:%02x", i)),
			Addrs: prefixes(fmt.Sprintf("10.1.100.%d/24", 10+i)), Alias: "mvlan/test/ep/int",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := nstest.Ping(nss[0], netip4(t, "10.1.100.11"), 2, 2*time.Second); err != nil {
		t.Error(err)
	}
}
