package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// manyLabels returns n --label flags.
func manyLabels(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--label", fmt.Sprintf("k%d=v", i))
	}
	return args
}

// TestBadInput: every bad input fails with exit 1 or 2 and an error naming
// the value, and changes nothing: no link, no network.
func TestBadInput(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	sb.AddVeth(t, "eth2")
	sb.Run(t, sb.Path, "ip", "link", "property", "add", "dev", "eth1", "altname", "lan1")
	sb.Run(t, sb.Path, "ip", "link", "add", "mv1", "link", "eth1", "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "add", "mv2", "link", "eth2", "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "add", "mv3", "link", "eth2", "type", "macvlan", "mode", "bridge")
	sb.AddVeth(t, "eth4")
	sb.Run(t, sb.Path, "ip", "link", "add", "br4", "type", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", "eth4", "master", "br4")
	// mv5: a macvlan whose lower link stays in the wire namespace.
	sb.Run(t, sb.WirePath, "ip", "link", "add", "mv5", "link", "w-eth2", "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.WirePath, "ip", "link", "set", "mv5", "netns", filepath.Base(sb.Path))
	sb.Run(t, sb.Path, "ip", "tuntap", "add", "dev", "tun0", "mode", "tun") // no Ethernet
	eth1MAC := linkMAC(t, sb.Path, "eth1")
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=10.1.0.0/16", "-o", "parent=eth1", "taken")
	a.ok("network", "create", "--subnet=10.2.0.0/16", "-o", "parent=mv2", "onmv")
	create := func(args ...string) []string { return append([]string{"network", "create"}, args...) }
	run := func(args ...string) []string {
		return append([]string{"run", "-d", "--name", sb.Name + "-cbad"}, args...)
	}
	long := "averyveryverylongname"
	cns := sb.Netns(t, "cns") // connect's: no link is left in it
	// elsewhere runs mvlan in a mount namespace of its own in which cns's
	// path is another namespace's (as a PID namespace makes
	// /proc/PID/ns/net another process's).
	other := sb.Netns(t, "other")
	elsewhere := []string{"--mount", "--propagation", "private", "sh", "-ec", `mount --bind "$1" "$2"; shift 2; exec "$@"`, "sh", other, cns}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"unknown command", []string{"nosuchcmd"}, 2, []string{"nosuchcmd", "mvlan --help"}},
		{"unknown network command", []string{"network", "nosuch"}, 2, []string{"nosuch", "mvlan --help"}},
		{"unknown driver", create("-d", "bridge", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "n"), 1, []string{`"bridge"`, "macvlan"}},
		{"malformed cidr", create("--subnet=172.16.86.0/33", "-o", "parent=eth0", "n"), 1, []string{"172.16.86.0/33"}},
		{"host bits", create("--subnet=172.16.86.7/24", "-o", "parent=eth0", "n"), 1, []string{"172.16.86.7/24", "172.16.86.0/24"}},
		{"mapped subnet under /96", create("--subnet=::ffff:172.16.86.0/24", "-o", "parent=eth0", "n"), 1,
			[]string{"::ffff:172.16.86.0/24", "IPv4 form, 172.16.86.0/24", "::ffff:172.16.86.0/120"}},
		{"gateway outside", create("--subnet=172.16.86.0/24", "--gateway=172.16.87.1", "-o", "parent=eth0", "n"), 1, []string{"172.16.87.1"}},
		{"ip-range outside", create("--subnet=172.16.86.0/24", "--ip-range=172.16.87.0/25", "-o", "parent=eth0", "n"), 1, []string{"172.16.87.0/25"}},
		{"aux outside", create("--subnet=172.16.86.0/24", "--aux-address=h=172.16.87.9", "-o", "parent=eth0", "n"), 1, []string{"172.16.87.9"}},
		{"aux is the gateway", create("--subnet=172.16.86.0/24", "--aux-address=h=172.16.86.1", "-o", "parent=eth0", "n"), 1, []string{"h=172.16.86.1", "gateway"}},
		{"two gateways", create("--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "--gateway=172.16.86.2", "-o", "parent=eth0", "n"), 1, []string{"172.16.86.2"}},
		{"v6 without --ipv6", create("--subnet=2001:db8::/64", "-o", "parent=eth0", "n"), 1, []string{"2001:db8::/64", "--ipv6"}},
		{"overlap within", create("--subnet=172.16.0.0/16", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "n"), 1, []string{"172.16.86.0/24"}},
		{"overlap other network", create("--subnet=10.1.5.0/24", "-o", "parent=eth0", "n"), 1, []string{"10.1.5.0/24", "10.1.0.0/16", "taken"}},
		{"duplicate name", create("--subnet=172.16.86.0/24", "-o", "parent=eth0", "taken"), 1, []string{"taken", "already exists"}},
		{"parent not found", create("--subnet=172.16.86.0/24", "-o", "parent=eth9", "n"), 1, []string{`"eth9"`, "not found"}},
		{"parent not Ethernet", create("--subnet=172.16.86.0/24", "-o", "parent=tun0", "n"), 1, []string{`"tun0"`, "type none, not Ethernet"}},
		{"two parents", create("--subnet=172.16.86.0/24", "-o", "parent=eth0", "-o", "parent=eth2", "n"), 1,
			[]string{"option parent is given twice", `"eth0" and "eth2"`}},
		{"ifname the kernel's", run("--net=taken", "--ifname", "all"), 1, []string{`"all"`, "the kernel's own"}},
		{"MAC of the parent", run("--net=taken", "--mac", eth1MAC), 1, []string{eth1MAC, "is the parent eth1's own"}},
		{"ip6 on a network without IPv6", run("--net=taken", "--ip6=2001:db8::5"), 1, []string{"--ip6", "2001:db8::5", "no IPv6", "--ipv6"}},
		{"an IPv6 address with --ip", run("--net=taken", "--ip=2001:db8::5"), 1, []string{"2001:db8::5", "--ip6"}},
		{"an IPv4 address with --ip6", run("--net=taken", "--ip6=10.1.0.5"), 1, []string{"10.1.0.5", "with --ip"}},
		{"not an address", run("--net=taken", "--ip=10.1.0.500"), 1, []string{"10.1.0.500", "not an IP address"}},
		{"ifname a template", []string{"connect", "--ifname", "eth%d", "taken", cns}, 1, []string{`"eth%d"`, "'%'"}},
		{"run ifname a template", run("--net=taken", "--ifname", "net%d"), 1, []string{`"net%d"`, "'%'"}},
		{"parent a template", create("--subnet=172.16.86.0/24", "-o", "parent=eth%d", "n"), 1, []string{`"eth%d"`, "'%'"}},
		{"parent lo", create("--subnet=172.16.86.0/24", "-o", "parent=lo", "n"), 1, []string{`"lo"`, "loopback"}},
		{"vlan 0", create("--subnet=172.16.86.0/24", "-o", "parent=eth0.0", "n"), 1, []string{"eth0.0", "1-4094"}},
		{"vlan 4095", create("--subnet=172.16.86.0/24", "-o", "parent=eth0.4095", "n"), 1, []string{"eth0.4095", "1-4094"}},
		{"vlan abc", create("--subnet=172.16.86.0/24", "-o", "parent=eth0.abc", "n"), 1, []string{"eth0.abc", "not found", "NAME.VID"}},
		{"dotted name not found", create("--subnet=172.16.86.0/24", "-o", "parent=br.lan", "n"), 1, []string{`"br.lan"`, "not found"}},
		{"parent a macvlan of another namespace's link", create("--subnet=172.16.86.0/24", "-o", "parent=mv5", "n"), 1, []string{"mv5", "another network namespace", "this namespace"}},
		{"parent a bridge port", create("--subnet=172.16.86.0/24", "-o", "parent=eth4", "n"), 1, []string{"eth4", "bridge br4", "parent=br4"}},
		{"vlan empty", create("--subnet=172.16.86.0/24", "-o", "parent=eth0.", "n"), 1, []string{"eth0.", "1-4094"}},
		{"name over 15 bytes", create("--subnet=172.16.86.0/24", "-o", "parent="+long+".50", "n"), 1, []string{long + ".50", "15"}},
		{"unknown mode", create("--subnet=172.16.86.0/24", "-o", "parent=eth0", "-o", "macvlan_mode=fast", "n"), 1, []string{`"fast"`, "bridge"}},
		{"second network on parent", create("--subnet=172.16.86.0/24", "-o", "parent=eth1", "n"), 1, []string{"eth1", "taken"}},
		{"second network on parent's altname", create("--subnet=172.16.86.0/24", "-o", "parent=lan1", "n"), 1, []string{"lan1", "eth1", "taken"}},
		{"parent a macvlan of another's parent", create("--subnet=172.16.86.0/24", "-o", "parent=mv1", "n"), 1, []string{"mv1", "macvlan of eth1", "taken"}},
		{"parent the lower of another's macvlan parent", create("--subnet=172.16.86.0/24", "-o", "parent=eth2", "n"), 1, []string{"eth2", "onmv", "mv2"}},
		{"parent a macvlan next to another's macvlan parent", create("--subnet=172.16.86.0/24", "-o", "parent=mv3", "n"), 1, []string{"mv3", "onmv", "mv2"}},
		{"subnet /32", create("--subnet=172.30.50.0/32", "-o", "parent=eth0", "n"), 1, []string{"172.30.50.0/32", "single address"}},
		{"subnet ::/0", create("--ipv6", "--subnet=::/0", "-o", "parent=eth0", "n"), 1, []string{"::/0", "wider than /32"}},
		{"subnet multicast", create("--subnet=224.0.0.0/24", "-o", "parent=eth0", "n"), 1, []string{"224.0.0.0/24", "multicast", "172.16.86.0/24"}},
		{"subnet loopback", create("--subnet=127.0.0.0/8", "-o", "parent=eth0", "n"), 1, []string{"127.0.0.0/8", "loopback"}},
		{"subnet IPv6 multicast", create("--ipv6", "--subnet=ff05::/64", "-o", "parent=eth0", "n"), 1, []string{"ff05::/64", "multicast"}},
		{"subnet wider than /8", create("--subnet=10.0.0.0/7", "-o", "parent=eth0", "n"), 1, []string{"10.0.0.0/7", "wider than /8"}},
		{"label key of 3000 bytes", create("--subnet=172.16.86.0/24", "--label", strings.Repeat("k", 3000)+"=v", "-o", "parent=eth0", "n"), 1,
			[]string{"kkkk", "3000 bytes", "at most 256"}},
		{"257 labels", create(append(manyLabels(257), "--subnet=172.16.86.0/24", "-o", "parent=eth0", "n")...), 1, []string{"257 labels", "at most 256"}},
		{"rm unknown", []string{"network", "rm", "nosuchnet"}, 1, []string{`"nosuchnet"`, "not found"}},
		{"inspect unknown", []string{"network", "inspect", "nosuchnet"}, 1, []string{`"nosuchnet"`}},
		{"create without name", create("--subnet=172.16.86.0/24"), 2, []string{"NAME"}},
		{"unknown flag", create("--subnett=172.16.86.0/24", "n"), 2, []string{"subnett"}},
		{"bad format", []string{"network", "ls", "--format", "yaml"}, 2, []string{`"yaml"`}},
	}
	before := links(t, sb)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := a.mv(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not mention %q", errs, w)
				}
			}
			if after := links(t, sb); !maps.Equal(before, after) {
				t.Fatalf("links changed: %v -> %v", before, after)
			}
			if q := strings.Fields(a.ok("network", "ls", "--format", "json")); len(q) == 0 {
				t.Fatal("ls empty")
			}
		})
	}
	_, errs, code := runCmd(time.Minute, "unshare", append(elsewhere, mvlanBin, "--socket", a.socket, "connect", "taken", cns)...)
	if code != 1 || !strings.Contains(errs, cns+" is net:[") || !strings.Contains(errs, "where the request was made") {
		t.Errorf("connect to %s, which is %s where mvlan runs: exit %d: %s; want 1 naming the path and the two namespaces", cns, other, code, errs)
	}
	for _, ns := range []string{cns, other} {
		if out := sb.Run(t, ns, "ip", "-o", "link", "show"); strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, ": lo:") {
			t.Errorf("bad inputs left links in %s: %s", ns, out)
		}
	}
	// A disconnect from there is refused too, and cns stays connected.
	a.ok("connect", "taken", cns)
	_, errs, code = runCmd(time.Minute, "unshare", append(elsewhere, mvlanBin, "--socket", a.socket, "disconnect", "taken", cns)...)
	if code != 1 || !strings.Contains(errs, cns+" is net:[") || !strings.Contains(errs, "where the request was made") {
		t.Errorf("disconnect %s, which is %s where mvlan runs: exit %d: %s; want 1 naming the path and the two namespaces", cns, other, code, errs)
	}
	if out := sb.Run(t, cns, "ip", "-br", "link", "show", "eth0"); !strings.Contains(out, "UP") {
		t.Errorf("%s after the refused disconnect: %q; want eth0 up", cns, out)
	}
	a.ok("disconnect", "taken", cns)
	if ls := a.ok("network", "ls", "-q"); len(strings.Fields(ls)) != 2 { // taken and onmv
		t.Fatalf("bad inputs left networks: %q", ls)
	}
	// A free link's altname is taken as the link's name.
	sb.AddVeth(t, "eth3")
	sb.Run(t, sb.Path, "ip", "link", "property", "add", "dev", "eth3", "altname", "lan3")
	a.ok("network", "create", "--subnet=10.3.0.0/16", "-o", "parent=lan3", "alt")
	if p := a.ok("network", "inspect", "-f", "{{.Parent}}", "alt"); strings.TrimSpace(p) != "eth3" {
		t.Errorf("network on altname lan3 shows parent %q, want eth3", p)
	}
}

// TestBadRequestBody: the API refuses a body with trailing data, a key
// given twice or an unknown field (400, the error names it) and changes
// nothing; the same body without the fault creates the network.
func TestBadRequestBody(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	good := `{"name":"n1","subnets":["172.16.86.0/24"],"options":["parent=eth0"]}`
	before := links(t, sb)
	for body, want := range map[string]string{
		good + `garbage`: "trailing data",
		good + good:      "trailing data",
		`{"name":"n1","subnets":["172.16.86.0/24"],"options":["parent=eth0"],"name":"n2"}`:  `key \"name\" is given twice`,
		`{"name":"n1","subnets":["172.16.86.0/24"],"options":["parent=eth0"],"subnet":"x"}`: `unknown field \"subnet\"`,
	} {
		code, answer := postRaw(t, a.socket, "/v1/networks", body)
		if code != 400 || !strings.Contains(answer, want) {
			t.Errorf("POST %s: %d %s; want 400 naming %s", body, code, answer, want)
		}
		if q := a.ok("network", "ls", "-q"); q != "" {
			t.Fatalf("POST %s left a network: %q", body, q)
		}
		if after := links(t, sb); !maps.Equal(before, after) {
			t.Fatalf("POST %s changed links: %v -> %v", body, before, after)
		}
	}
	if code, answer := postRaw(t, a.socket, "/v1/networks", good); code != 201 {
		t.Fatalf("POST %s: %d %s; want 201", good, code, answer)
	}
}

// postRaw sends body as is to the agent's API and returns the status and answer.
func postRaw(t *testing.T, socket, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	defer c.CloseIdleConnections()
	resp, err := c.Post("http://mvlan"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
