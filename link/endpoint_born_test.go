package link_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestAttachEndpointReplaced: a root process of the container renames
// the macvlan AttachEndpoint has just made (between its creation and its
// look-up by name, AfterAdd) and may put a link of its own under the name.
// The attach fails naming why, configures nothing of the container's (no
// address, no alias on it), and deletes the macvlan it made under its
// new name.
func TestAttachEndpointReplaced(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth5") // a parent whose index no link of a new namespace has
	h := openHost(t, sb)
	parent, err := h.Link("eth5")
	if err != nil {
		t.Fatal(err)
	}
	const born = "0x6d766c62" // bornGroup
	tests := []struct {
		name    string
		mode    string
		replace func(t *testing.T, ns, name string) // after the rename to x
		wantErr string
		wantIn  []string
	}{
		{name: "renamed", wantErr: "no link has that name there any more", wantIn: []string{"lo"}},
		{name: "renamed, passthru", mode: "passthru", wantErr: "no link has that name there any more", wantIn: []string{"lo"}},
		{name: "replaced by a veth", wantErr: "a veth, not a macvlan", wantIn: []string{"eth0", "eth0p", "lo"},
			replace: func(t *testing.T, ns, name string) {
				sb.Run(t, ns, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
			}},
		{name: "replaced by a macvlan with another MAC", wantErr: "MAC 02:42:ac:10:56:0b, not 02:42:ac:10:56:0a",
			wantIn: []string{"eth0", "lo", "v0", "v0p"},
			replace: func(t *testing.T, ns, name string) {
				sb.Run(t, ns, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v0p")
				sb.Run(t, ns, "ip", "link", "add", "link", "v0", "name", name, "address", "02:42:ac:10:56:0b", "type", "macvlan")
				sb.Run(t, ns, "ip", "link", "set", name, "group", born)
			}},
		{name: "replaced by a forged macvlan on a lower of the same index", wantErr: "lower link is in the namespace itself",
			wantIn: []string{"eth0", "lo", "v0", "v0p"},
			replace: func(t *testing.T, ns, name string) {
				sb.Run(t, ns, "ip", "link", "add", "v0", "index", fmt.Sprint(parent.Index), "type", "veth",
					"peer", "name", "v0p", "index", fmt.Sprint(parent.Index+100))
				sb.Run(t, ns, "ip", "link", "add", "link", "v0", "name", name, "address", "02:42:ac:10:56:0a", "type", "macvlan")
				sb.Run(t, ns, "ip", "link", "set", name, "group", born)
			}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := sb.Netns(t, fmt.Sprintf("r%d", i))
			link.AfterAdd(t, func(netnsPath, name string) {
				sb.Run(t, netnsPath, "ip", "link", "set", name, "name", "x")
				if tt.replace != nil {
					tt.replace(t, netnsPath, "eth0")
				}
			})
			s := link.EndpointSpec{Parent: "eth5", Mode: tt.mode, NetnsPath: ns, MAC: mac(t, "02:42:ac:10:56:0a"),
				Addrs: prefixes("172.16.86.10/24"), Gateways: addrs("172.16.86.1"), Alias: "mvlan/test/ep/r"}
			err := h.AttachEndpoint(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("AttachEndpoint error = %v; want one containing %q", err, tt.wantErr)
			}
			sameLinks(t, h, "", []string{"eth0", "eth5", "lo"})
			sameLinks(t, h, ns, tt.wantIn)
			if tt.replace != nil {
				out := sb.Run(t, ns, "ip", "-d", "addr", "show", "eth0")
				if strings.Contains(out, "172.16.86.10") || strings.Contains(out, "mvlan/test") || strings.Contains(out, "UP") {
					t.Errorf("the container's eth0 was configured:\n%s", out)
				}
			}
		})
	}
}
