package main

// Differential test of the Docker integration: the same commands against
// Docker's built-in macvlan driver (on parent eth1) and against mvlan (-d
// DRIVER --ipam-driver DRIVER, on its twin parent eth0) must give the same
// container addresses, gateways and routes, and the same accept/reject
// decision for each bad input. Each case runs on one driver at a time (the
// built-in network is created, probed and removed before mvlan's), so the
// two never own the same subnet at once. Differences that are deliberate
// are listed in diffDeliberate with the reason; there mvlan's behaviour is
// asserted. Skipped without docker.io and busybox-static.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// diffSide is one driver of the comparison.
type diffSide struct {
	name   string   // "builtin" or "mvlan"
	parent string   // its twin parent
	flags  []string // -d ... (--ipam-driver ...)
	driver string   // the network driver and IPAM driver sent to the API
	ipam   string
}

// diffContainer is a container a case starts: its name suffix and the
// `docker run` arguments after --net.
type diffContainer struct {
	name string
	args []string
	// mvlanWant, when set, marks a deliberate difference: a dynamic IPv4
	// address on a network of several IPv4 subnets. Docker's client sends
	// the --subnet flags in map order (random), and Docker's IPAM hands out
	// from the first pool it got; mvlan keeps the pools in address order
	// (docker/docker.go), so dynamic addresses come from the lowest subnet,
	// every time. mvlan must show exactly mvlanWant; the built-in driver's
	// address must lie in the first subnet of its network's IPAM config
	// (and equal mvlan's when that first subnet is the lowest).
	mvlanWant string
}

type diffCase struct {
	name       string
	create     []string // `docker network create` arguments, without -d, parent and name
	containers []diffContainer
}

// diffBad is a bad input, run through both drivers: `docker network
// create` (or, with run, a `docker run` on a network create made); their
// accept/reject decisions must agree unless diffDeliberate lists the case.
type diffBad struct {
	name   string
	create []string // network create args without -d/name; "{parent}" is replaced
	second []string // when set: this network is created first (it must succeed), then create
	run    []string // when set: create must succeed; this `docker run` is the bad input
	pre    []string // with run: a container started first (args after --net)
	// api, when set, is the IPAM config sent straight to the Engine API
	// (POST /networks/create, parent {parent}) instead of create: the
	// docker client itself refuses a gateway, ip-range or aux-address
	// outside the subnet and overlapping subnets before any driver sees
	// them, so these cases are also sent past it.
	api  []map[string]any
	ipv6 bool // with api: EnableIPv6
}

// diffDeliberate lists the cases where mvlan deliberately decides
// differently from Docker's built-in macvlan driver (dockerd 20.10): case
// name -> the reason. There mvlan must reject (its behaviour is asserted);
// the built-in driver's decision is only logged.
var diffDeliberate = map[string]string{
	// dockerd 20.10's default IPAM takes an IPRange outside its Subnet
	// (the docker client refuses it; the API does not) and hands out
	// nothing useful from it; mvlan's IPAM refuses it in RequestPool, as
	// the client would.
	"ip-range outside subnet (API)": "mvlan refuses an ip-range outside its subnet; Docker's default IPAM takes it (and leaks its pool on removal)",
}

func testDockerDiff(t *testing.T) {
	daemon, cli, busybox := dockerTools(t)
	start := time.Now()
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	driver := randName("mvt-")
	sock := filepath.Join("/run/docker/plugins", driver+".sock")
	t.Cleanup(func() { _ = os.Remove(sock) })
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock}
	a.start()
	d := startDockerd(t, sb, daemon, cli)
	d.importBusybox(busybox)
	t.Logf("agent and dockerd up, image imported: %v", time.Since(start).Round(time.Millisecond))
	x := &dockerTest{a: a, d: d, driver: driver}
	sides := []diffSide{
		{name: "builtin", parent: "eth1", flags: []string{"-d", "macvlan"}, driver: "macvlan", ipam: "default"},
		{name: "mvlan", parent: "eth0", flags: []string{"-d", driver, "--ipam-driver", driver}, driver: driver, ipam: driver},
	}

	cases := []diffCase{
		{name: "pub_net", create: []string{"--subnet=172.16.86.0/24", "--gateway=172.16.86.1"},
			containers: []diffContainer{{"a", []string{"--ip=172.16.86.10"}, ""}, {"b", nil, ""}}},
		{name: "macnet32", create: []string{"--subnet=192.168.32.0/24", "--ip-range=192.168.32.128/25", "--gateway=192.168.32.254"},
			containers: []diffContainer{{"a", nil, ""}, {"b", nil, ""}}},
		{name: "gwinfer", create: []string{"--subnet=10.1.100.128/25"},
			containers: []diffContainer{{"a", nil, ""}}},
		{name: "mcv101", create: []string{"--subnet=10.1.20.0/24", "--subnet=10.1.10.0/24", "--gateway=10.1.20.1", "--gateway=10.1.10.1"},
			containers: []diffContainer{{"a", []string{"--ip=10.1.20.10"}, ""}, {"b", []string{"--ip=10.1.10.10"}, ""}, {"c", nil, "addr inet 10.1.10.2/24\ndefault via 10.1.10.1 dev eth0\nroute 10.1.10.0/24"}}},
		{name: "macvlan216", create: []string{"--subnet=192.168.216.0/24", "--subnet=192.168.218.0/24",
			"--gateway=192.168.216.1", "--gateway=192.168.218.1",
			"--ipv6", "--subnet=2001:db8:abc8::/64", "--gateway=2001:db8:abc8::10", "-o", "macvlan_mode=bridge"},
			containers: []diffContainer{{"a", []string{"--ip=192.168.216.10"}, ""}, {"b", []string{"--ip=192.168.218.10"}, ""},
				{"c", []string{"--ip6=2001:db8:abc8::20"}, "addr inet 192.168.216.2/24\naddr inet6 2001:db8:abc8::20/64\ndefault via 192.168.216.1 dev eth0\ndefault via 2001:db8:abc8::10 dev eth0\nroute 192.168.216.0/24\nroute 2001:db8:abc8::/64"},
				{"d", nil, "addr inet 192.168.216.3/24\naddr inet6 2001:db8:abc8::3/64\ndefault via 192.168.216.1 dev eth0\ndefault via 2001:db8:abc8::10 dev eth0\nroute 192.168.216.0/24\nroute 2001:db8:abc8::/64"}}},
		// An IPv6 subnet without --ipv6: both drivers take the network;
		// what the container gets is compared.
		{name: "v6noflag", create: []string{"--subnet=10.1.30.0/24", "--subnet=fd12::/64"},
			containers: []diffContainer{{"a", nil, ""}}},
		{name: "mcv0", create: []string{"--subnet=192.168.136.0/24", "--subnet=192.168.138.0/24", "--ipv6", "--subnet=fd11::/64",
			"--ip-range=192.168.136.0/25", "--ip-range=192.168.138.0/25",
			"--aux-address=reserved1=fd11::2", "--aux-address=reserved2=192.168.136.2", "--aux-address=reserved3=192.168.138.2"},
			containers: []diffContainer{
				{"a", nil, "addr inet 192.168.136.3/24\naddr inet6 fd11::3/64\ndefault via 192.168.136.1 dev eth0\ndefault via fd11::1 dev eth0\nroute 192.168.136.0/24\nroute fd11::/64"},
				{"b", nil, "addr inet 192.168.136.4/24\naddr inet6 fd11::4/64\ndefault via 192.168.136.1 dev eth0\ndefault via fd11::1 dev eth0\nroute 192.168.136.0/24\nroute fd11::/64"}}},
	}
	t.Run("Cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got := map[string]map[string]string{}
				for _, s := range sides {
					got[s.name] = x.diffRun(t, s, c)
				}
				b, m := got["builtin"], got["mvlan"]
				for _, ct := range c.containers {
					if ct.mvlanWant != "" {
						diffOrder(t, ct, b["_first4"], b[ct.name], m[ct.name])
						continue
					}
					if b[ct.name] != m[ct.name] {
						t.Errorf("container %s (%s): built-in macvlan:\n%s\nmvlan:\n%s", ct.name, strings.Join(ct.args, " "), b[ct.name], m[ct.name])
					} else {
						t.Logf("container %s: same on both:\n%s", ct.name, b[ct.name])
					}
				}
			})
		}
	})

	bad := []diffBad{
		{name: "unknown macvlan_mode", create: []string{"--subnet=10.9.0.0/24", "-o", "parent={parent}", "-o", "macvlan_mode=bogus"}},
		{name: "gateway outside subnet", create: []string{"--subnet=10.9.0.0/24", "--gateway=10.9.1.1", "-o", "parent={parent}"}},
		{name: "ip-range outside subnet", create: []string{"--subnet=10.9.0.0/24", "--ip-range=10.9.1.0/25", "-o", "parent={parent}"}},
		{name: "aux outside subnet", create: []string{"--subnet=10.9.0.0/24", "--aux-address=x=10.9.1.5", "-o", "parent={parent}"}},
		{name: "aux-address is the gateway", create: []string{"--subnet=10.9.0.0/24", "--gateway=10.9.0.1", "--aux-address=h=10.9.0.1", "-o", "parent={parent}"}},
		{name: "v6 subnet without --ipv6", create: []string{"--subnet=10.9.0.0/24", "--subnet=fd12::/64", "-o", "parent={parent}"}},
		{name: "overlapping subnets", create: []string{"--subnet=10.9.0.0/24", "--subnet=10.9.0.0/25", "-o", "parent={parent}"}},
		{name: "missing parent", create: []string{"--subnet=10.9.0.0/24", "-o", "parent=nosuch0"}},
		{name: "parent VLAN 4095", create: []string{"--subnet=10.9.0.0/24", "-o", "parent={parent}.4095"}},
		{name: "parent VLAN 50 (made by the driver)", create: []string{"--subnet=10.9.0.0/24", "-o", "parent={parent}.50"}},
		{name: "second network on parent", second: []string{"--subnet=10.9.0.0/24", "-o", "parent={parent}"},
			create: []string{"--subnet=10.9.1.0/24", "-o", "parent={parent}"}},
		{name: "--ip outside subnet", create: []string{"--subnet=10.9.0.0/24", "-o", "parent={parent}"},
			run: []string{"--ip=10.9.1.10"}},
		{name: "--ip taken", create: []string{"--subnet=10.9.0.0/24", "-o", "parent={parent}"},
			pre: []string{"--ip=10.9.0.10"}, run: []string{"--ip=10.9.0.10"}},
		{name: "gateway outside subnet (API)", api: []map[string]any{{"Subnet": "10.9.0.0/24", "Gateway": "10.9.1.1"}}},
		{name: "aux outside subnet (API)", api: []map[string]any{{"Subnet": "10.9.0.0/24", "AuxiliaryAddresses": map[string]string{"x": "10.9.1.5"}}}},
		{name: "overlapping subnets (API)", api: []map[string]any{{"Subnet": "10.9.0.0/24"}, {"Subnet": "10.9.0.0/25"}}},
		// Last, and on a subnet of its own: dockerd 20.10's default IPAM
		// accepts this network and, once it is removed, still holds its
		// pool ("Pool overlaps with other one on this address space" for
		// every later built-in network on 10.98.0.0/24).
		{name: "ip-range outside subnet (API)", api: []map[string]any{{"Subnet": "10.98.0.0/24", "IPRange": "10.98.1.0/25"}}},
	}
	t.Run("BadInput", func(t *testing.T) {
		for _, c := range bad {
			t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
				accepted := map[string]string{}
				for _, s := range sides {
					accepted[s.name] = x.diffBadRun(t, s, c)
				}
				b, m := accepted["builtin"], accepted["mvlan"]
				if why, ok := diffDeliberate[c.name]; ok {
					t.Logf("deliberate difference (%s): built-in %s; mvlan %s", why, b, m)
					if !strings.HasPrefix(m, "rejected") {
						t.Errorf("mvlan: %s; want rejected (%s)", m, why)
					}
					return
				}
				if strings.HasPrefix(b, "rejected") != strings.HasPrefix(m, "rejected") {
					t.Errorf("built-in macvlan: %s\nmvlan: %s", b, m)
				} else {
					t.Logf("built-in: %s\nmvlan: %s", b, m)
				}
			})
		}
	})
	if t.Failed() {
		t.Logf("agent log:\n%s\n%s", a.log, d.logTail())
	}
	t.Logf("total: %v", time.Since(start).Round(time.Millisecond))
}

// diffCreate runs `docker network create` for side s; it returns the
// exit code and stderr; a network it made is removed when t ends (and
// may be removed before with diffRm).
func (x *dockerTest) diffCreate(t *testing.T, s diffSide, name string, args []string) (int, string) {
	t.Helper()
	var full []string
	for _, a := range args {
		full = append(full, strings.ReplaceAll(a, "{parent}", s.parent))
	}
	_, errs, code := x.docker(t, append(append(append([]string{"network", "create"}, s.flags...), full...), name)...)
	if code == 0 {
		t.Cleanup(func() { x.d.docker("network", "rm", name) })
	}
	return code, strings.TrimSpace(errs)
}

// diffRm removes containers, then networks, failing the test if Docker
// refuses.
func (x *dockerTest) diffRm(t *testing.T, containers, networks []string) {
	t.Helper()
	if len(containers) > 0 {
		if _, errs, code := x.d.docker(append([]string{"rm", "-f"}, containers...)...); code != 0 {
			t.Errorf("docker rm -f %v: %s", containers, errs)
		}
	}
	for _, n := range networks {
		// dockerd may count an endpoint of a container `rm -f` just
		// removed for a moment longer (its exit is handled apart):
		// "has active endpoints" is tried again, for up to 5 s.
		var errs string
		code := 1
		for try := 0; try < 50 && code != 0; try++ {
			if try > 0 {
				time.Sleep(100 * time.Millisecond)
			}
			if _, errs, code = x.d.docker("network", "rm", n); code != 0 && !strings.Contains(errs, "has active endpoints") {
				break
			}
		}
		if code != 0 {
			t.Errorf("docker network rm %s: %s", n, errs)
		}
	}
}

// diffRun creates the case's network on side s, starts its containers in
// order and returns, per container, what it sees: its global addresses,
// its default routes and its subnet routes (normalized, sorted).
func (x *dockerTest) diffRun(t *testing.T, s diffSide, c diffCase) map[string]string {
	t.Helper()
	net := "d" + s.name[:1] + "-" + c.name
	if code, errs := x.diffCreate(t, s, net, append(append([]string{}, c.create...), "-o", "parent="+s.parent)); code != 0 {
		t.Fatalf("%s: docker network create %s: %s", s.name, net, errs)
	}
	var names []string
	defer func() { x.diffRm(t, names, []string{net}) }()
	out := map[string]string{}
	// The order of the pools as Docker keeps them (its IPAM's order).
	for _, p := range strings.Fields(x.ok(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", net)) {
		if !strings.Contains(p, ":") {
			out["_first4"] = p
			break
		}
	}
	for _, ct := range c.containers {
		name := net + "-" + ct.name
		args := append(append([]string{"run", "-d", "--name", name, "--net=" + net}, ct.args...), dockerImage, "sleep", "1000")
		if o, errs, code := x.docker(t, args...); code != 0 {
			out[ct.name] = "docker run failed: " + strings.TrimSpace(o+errs)
			continue
		}
		names = append(names, name)
		t.Cleanup(func() { x.d.docker("rm", "-f", name) })
		probe, errs, code := x.docker(t, "exec", name, "sh", "-c", "ip -o addr show dev eth0; echo ==; ip route; echo ==; ip -6 route")
		if code != 0 {
			out[ct.name] = "docker exec failed: " + strings.TrimSpace(probe+errs)
			continue
		}
		out[ct.name] = diffNormalize(probe)
	}
	return out
}

// diffNormalize reduces `ip -o addr; ip route; ip -6 route` to the lines
// compared: "addr FAMILY A/P" (global scope only), "default via GW" and
// "route NET" (link-local and multicast routes left out).
func diffNormalize(probe string) string {
	var lines []string
	for _, l := range strings.Split(probe, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 4 && (f[2] == "inet" || f[2] == "inet6"):
			if slices.Contains(f, "global") {
				lines = append(lines, "addr "+f[2]+" "+f[3])
			}
		case len(f) >= 3 && f[0] == "default" && f[1] == "via":
			dev := ""
			if i := slices.Index(f, "dev"); i >= 0 && i+1 < len(f) {
				dev = " dev " + f[i+1]
			}
			lines = append(lines, "default via "+f[2]+dev)
		case len(f) >= 1 && strings.Contains(f[0], "/") && !strings.HasPrefix(f[0], "fe80:") && !strings.HasPrefix(f[0], "ff00:"):
			lines = append(lines, "route "+f[0])
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// diffBadRun runs bad input c on side s and returns "accepted" or
// "rejected: STDERR"; it leaves nothing behind.
func (x *dockerTest) diffBadRun(t *testing.T, s diffSide, c diffBad) string {
	t.Helper()
	var nets, containers []string
	defer func() { x.diffRm(t, containers, nets) }()
	if c.second != nil {
		first := "dbf-" + s.name
		if code, errs := x.diffCreate(t, s, first, c.second); code != 0 {
			t.Fatalf("%s: the first network: %s", s.name, errs)
		}
		nets = append(nets, first)
	}
	name := "dbn-" + s.name
	if c.api != nil {
		return x.diffAPICreate(t, s, name, c.api, c.ipv6)
	}
	code, errs := x.diffCreate(t, s, name, c.create)
	if c.run == nil {
		if code != 0 {
			return "rejected: " + errs
		}
		nets = append(nets, name)
		return "accepted"
	}
	if code != 0 {
		t.Fatalf("%s: docker network create for %s: %s", s.name, c.name, errs)
	}
	nets = append(nets, name)
	if c.pre != nil {
		pre := name + "-pre"
		args := append(append([]string{"run", "-d", "--name", pre, "--net=" + name}, c.pre...), dockerImage, "sleep", "1000")
		if o, errs, code := x.docker(t, args...); code != 0 {
			t.Fatalf("%s: the first container: %s%s", s.name, o, errs)
		}
		containers = append(containers, pre)
		t.Cleanup(func() { x.d.docker("rm", "-f", pre) })
	}
	ctr := name + "-c"
	args := append(append([]string{"run", "-d", "--name", ctr, "--net=" + name}, c.run...), dockerImage, "sleep", "1000")
	_, errs, code = x.docker(t, args...)
	// docker run -d leaves a created container behind even when it fails to start.
	t.Cleanup(func() { x.d.docker("rm", "-f", ctr) })
	containers = append(containers, ctr)
	if code != 0 {
		return fmt.Sprintf("rejected: %s", strings.TrimSpace(errs))
	}
	return "accepted"
}

// diffOrder checks a deliberate difference (see diffContainer.mvlanWant):
// mvlan's container shows exactly want; the built-in driver's dynamic
// IPv4 address lies in first, the first IPv4 subnet of its IPAM config,
// and equals mvlan's when first is mvlan's subnet too.
func diffOrder(t *testing.T, ct diffContainer, first, builtin, mv string) {
	t.Helper()
	if mv != ct.mvlanWant {
		t.Errorf("container %s (%s): mvlan:\n%s\nwant (the lowest subnet first):\n%s", ct.name, strings.Join(ct.args, " "), mv, ct.mvlanWant)
	}
	addr4 := func(s string) netip.Addr {
		for _, l := range strings.Split(s, "\n") {
			if p, ok := strings.CutPrefix(l, "addr inet "); ok {
				if pf, err := netip.ParsePrefix(p); err == nil {
					return pf.Addr()
				}
			}
		}
		return netip.Addr{}
	}
	firstP, err := netip.ParsePrefix(first)
	switch {
	case err != nil:
		t.Errorf("built-in network: first IPv4 subnet %q: %v", first, err)
	case !firstP.Contains(addr4(builtin)):
		t.Errorf("container %s: built-in macvlan:\n%s\nwant its dynamic address in %s, the first subnet of its IPAM config", ct.name, builtin, first)
	case firstP.Contains(addr4(ct.mvlanWant)) && builtin != mv:
		t.Errorf("container %s: built-in macvlan (first subnet %s, as mvlan's):\n%s\nmvlan:\n%s", ct.name, first, builtin, mv)
	case builtin != mv:
		t.Logf("container %s: deliberate difference (subnet order: Docker's IPAM took %s first, mvlan the lowest subnet): built-in:\n%s\nmvlan:\n%s", ct.name, first, builtin, mv)
	default:
		t.Logf("container %s: same on both (Docker's IPAM took %s first):\n%s", ct.name, first, mv)
	}
}

// diffAPICreate sends POST /networks/create straight to the Engine API
// (past the docker client's own checks) and returns "accepted" or
// "rejected: MESSAGE"; a network it made is removed.
func (x *dockerTest) diffAPICreate(t *testing.T, s diffSide, name string, cfg []map[string]any, ipv6 bool) string {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"Name": name, "Driver": s.driver, "EnableIPv6": ipv6, "CheckDuplicate": true,
		"IPAM":    map[string]any{"Driver": s.ipam, "Config": cfg},
		"Options": map[string]string{"parent": s.parent},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, errs, code := runCmd(60*time.Second, "curl", "-sS", "--unix-socket", x.d.sock, "-X", "POST",
		"-H", "Content-Type: application/json", "-d", string(body), "-w", "\n%{http_code}", "http://docker/networks/create")
	if code != 0 {
		t.Fatalf("curl: exit %d: %s", code, errs)
	}
	out = strings.TrimSpace(out)
	i := strings.LastIndex(out, "\n")
	status, msg := out[i+1:], out[:max(i, 0)]
	if status == "201" {
		x.diffRm(t, nil, []string{name})
		return "accepted"
	}
	return "rejected: HTTP " + status + " " + msg
}
