package main

// End-to-end tests: libcni (what runtimes use) runs the built plugin
// against a real agent in a namespace sandbox; containers are namespaces
// of the sandbox.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// Built once, by the first test that needs them: the plugin (named
// "mvlan", its CNI type, in cniDir) and the mvlan binary whose agent it
// talks to.
var (
	buildOnce        sync.Once
	cniDir, mvlanBin string
	buildErr         error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cniDir != "" {
		os.RemoveAll(filepath.Dir(cniDir))
	}
	os.Exit(code)
}

func binaries(t testing.TB) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mvlan-cni-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		cniDir, mvlanBin = filepath.Join(dir, "cni"), filepath.Join(dir, "mvlan")
		// mvlan agent runs the mvlan-agent next to mvlan.
		for _, b := range [][2]string{{filepath.Join(cniDir, "mvlan"), "."}, {mvlanBin, "../mvlan"},
			{filepath.Join(dir, "mvlan-agent"), "../mvlan-agent"},
			{filepath.Join(cniDir, "flushroutes"), "./testdata/flushroutes"},                // a later plugin of a chain (TestCNICheckChainedRoutes)
			{filepath.Join(dir, "cnitool"), "github.com/containernetworking/cni/cnitool"}} { // at go.mod's version
			if out, err := nstest.GoBuild(b[0], b[1]); err != nil {
				buildErr = fmt.Errorf("build %s: %w\n%s", b[1], err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// env is a sandbox with an agent and a runtime (libcni with a cache of
// its own) that has the network configuration "mvnet".
type env struct {
	t     *testing.T
	sb    *nstest.Sandbox
	a     *nstest.Agent
	cni   *libcni.CNIConfig
	cache string
	net   string // the mvlan network list() names; "" is pub_net
}

func newEnv(t *testing.T, agentFlags ...string) *env {
	t.Helper()
	sb := nstest.NewSandbox(t)
	binaries(t)
	e := &env{t: t, sb: sb, a: nstest.StartAgent(t, sb, mvlanBin, agentFlags...)}
	e.cache = t.TempDir()
	e.cni = libcni.NewCNIConfigWithCacheDir([]string{cniDir}, e.cache, nil)
	return e
}

// pubNet creates the reference's pub_net on the sandbox's eth0.
func (e *env) pubNet() {
	e.a.CLI("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
}

// restartHolding starts the agent again, holding for d each time it
// reaches the hold point (internal/crashpoint).
func (e *env) restartHolding(point string, d time.Duration) {
	e.a.Stop()
	e.a.Env = []string{"MVLAN_TEST_HOLDPOINT=" + point, "MVLAN_TEST_HOLD=" + d.String()}
	e.a.Start()
}

// restartCrashing starts the agent again, to die at the crash point, and
// to hold for d at hold before (none if "").
func (e *env) restartCrashing(point, hold string, d time.Duration) {
	e.a.Stop()
	e.a.Env = []string{"MVLAN_TEST_CRASHPOINT=" + point}
	if hold != "" {
		e.a.Env = append(e.a.Env, "MVLAN_TEST_HOLDPOINT="+hold, "MVLAN_TEST_HOLD="+d.String())
	}
	e.a.Start()
}

// list is a one-plugin configuration list of the given CNI version; extra
// is merged into the plugin's configuration (JSON object fields).
func (e *env) list(version, extra string) *libcni.NetworkConfigList {
	e.t.Helper()
	plugin := fmt.Sprintf(`{"type":"mvlan","network":%q,"socket":%q`, cmp.Or(e.net, "pub_net"), e.a.Socket)
	if extra != "" {
		plugin += "," + extra
	}
	raw := fmt.Sprintf(`{"cniVersion":%q,"name":"mvnet","plugins":[%s}]}`, version, plugin)
	l, err := libcni.NetworkConfFromBytes([]byte(raw))
	if err != nil {
		e.t.Fatalf("configuration %s: %v", raw, err)
	}
	return l
}

// container makes a namespace and the runtime's view of it.
func (e *env) container(name string) *libcni.RuntimeConf {
	e.t.Helper()
	return &libcni.RuntimeConf{ContainerID: "ctr-" + name + "-" + strings.Repeat("0", 8), NetNS: e.sb.Netns(e.t, name), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", e.sb.Name + "-" + name}}}
}

func (e *env) add(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) *current.Result {
	e.t.Helper()
	r, err := e.cni.AddNetworkList(context.Background(), l, rt)
	if err != nil {
		e.t.Fatalf("ADD (%s) %s: %v\nagent log:\n%s", l.CNIVersion, rt.ContainerID, err, e.a.Log())
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		e.t.Fatalf("ADD result %v: %v", r, err)
	}
	return res
}

func (e *env) del(l *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	e.t.Helper()
	if err := e.cni.DelNetworkList(context.Background(), l, rt); err != nil {
		e.t.Fatalf("DEL (%s) %s: %v\nagent log:\n%s", l.CNIVersion, rt.ContainerID, err, e.a.Log())
	}
}

// endpoints lists the agent's endpoints (what `mvlan ps` shows).
func (e *env) endpoints() []api.Endpoint {
	e.t.Helper()
	cl := api.NewClient(e.a.Socket)
	defer cl.Close()
	eps, err := cl.Endpoints(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return eps
}

// noDrift asks the agent to compare its state with the kernel and IPAM.
func (e *env) noDrift() {
	e.t.Helper()
	var ch api.Check
	cl := api.NewClient(e.a.Socket)
	defer cl.Close()
	ch, err := cl.Check(context.Background())
	if err != nil || len(ch.Drift) > 0 {
		e.t.Errorf("agent check: %v %q", err, ch.Drift)
	}
}

// cniCode returns the CNI error code of err (0 when it is not one).
func cniCode(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// addrs is `ip -br addr show IFNAME` in namespace ns: "eth0 UP 1.2.3.4/24
// ...", the link's line even without an address; "" only when ns has no
// link IFNAME. Any other failure (no such namespace, say) fails t.
func addrs(t *testing.T, ns, ifName string) string {
	t.Helper()
	out, err := nstest.RunErr(ns, "ip", "-br", "addr", "show", "dev", ifName)
	if err != nil {
		if strings.Contains(out, `Device "`+ifName+`" does not exist`) {
			return ""
		}
		t.Fatalf("ip addr show dev %s in %s: %v\n%s", ifName, ns, err, out)
	}
	return strings.Join(strings.Fields(out), " ")
}

func macOf(t *testing.T, ns, ifName string) string {
	t.Helper()
	out, err := nstest.RunErr(ns, "ip", "-br", "link", "show", "dev", ifName)
	if f := strings.Fields(out); err == nil && len(f) >= 3 {
		return f[2] // NAME STATE MAC FLAGS
	}
	return ""
}

// TestCNIVersions: ADD, CHECK, DEL through libcni for each spec version
// the plugin supports: the result (converted to the version) names the
// interface and its address, the address is on the link in the container,
// `mvlan ps` lists the endpoint by the pod's name, CHECK passes and sees
// a changed MAC, DEL removes everything and a second DEL succeeds.
func TestCNIVersions(t *testing.T) {
	// No tamper check: it would put the MAC back (and record the tamper)
	// between the change below and the CHECK that must report it, when
	// its tick falls there (a busy machine).
	e := newEnv(t, "--tamper-check", "0")
	e.pubNet()
	for i, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			l := e.list(v, "")
			rt := e.container(fmt.Sprintf("v%d", i))
			r := e.add(l, rt)
			if len(r.IPs) != 1 || len(r.Interfaces) != 1 || r.Interfaces[0].Name != "eth0" || r.Interfaces[0].Sandbox != rt.NetNS {
				t.Fatalf("ADD result %+v; want one interface eth0 in %s with one address", r, rt.NetNS)
			}
			addr := r.IPs[0].Address.String()
			if !strings.HasPrefix(addr, "172.16.86.") || !strings.HasSuffix(addr, "/24") || r.IPs[0].Gateway.String() != "172.16.86.1" {
				t.Errorf("ADD address %s gateway %s; want 172.16.86.x/24 via 172.16.86.1", addr, r.IPs[0].Gateway)
			}
			if got := addrs(t, rt.NetNS, "eth0"); !strings.Contains(got, addr) {
				t.Errorf("the container's eth0: %q; want %s on it", got, addr)
			}
			if got := macOf(t, rt.NetNS, "eth0"); got != r.Interfaces[0].Mac {
				t.Errorf("the container's eth0 has MAC %s; the result says %s", got, r.Interfaces[0].Mac)
			}
			eps := e.endpoints()
			if len(eps) != 1 || eps[0].Name != e.sb.Name+"-"+fmt.Sprintf("v%d", i) || eps[0].Addrs[0].String() != addr {
				t.Errorf("endpoints: %+v; want one named after K8S_POD_NAME with %s", eps, addr)
			}
			if ps := e.a.CLI("ps"); !strings.Contains(ps, eps[0].Name) || !strings.Contains(ps, addr) {
				t.Errorf("mvlan ps:\n%s\nwant %s with %s", ps, eps[0].Name, addr)
			}
			if err := e.cni.CheckNetworkList(context.Background(), l, rt); err != nil {
				t.Errorf("CHECK after ADD: %v", err)
			}
			nstest.RunErr(rt.NetNS, "ip", "link", "set", "eth0", "address", "02:00:00:00:00:99")
			if err := e.cni.CheckNetworkList(context.Background(), l, rt); cniCode(err) != errDrift || !strings.Contains(err.Error(), "02:00:00:00:00:99") {
				t.Errorf("CHECK after the MAC changed: %v; want code %d naming the MAC", err, errDrift)
			}
			e.del(l, rt)
			if eps := e.endpoints(); len(eps) != 0 {
				t.Errorf("mvlan ps after DEL: %+v; want none", eps)
			}
			if got := addrs(t, rt.NetNS, "eth0"); got != "" {
				t.Errorf("the container's eth0 after DEL: %q; want no such link", got)
			}
			e.del(l, rt) // gone already: still success
			e.noDrift()
		})
	}
}

// TestCNIStaticIPAndMAC: capability arguments "ips" and "mac" give the
// container exactly that address and MAC; a repeated ADD asking for
// others is refused, the same request answered.
func TestCNIStaticIPAndMAC(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", `"capabilities":{"ips":true,"mac":true},"dns":{"nameservers":["172.16.86.53"],"search":["lan"]}`)
	rt := e.container("s")
	rt.CapabilityArgs = map[string]any{"ips": []string{"172.16.86.42/24"}, "mac": "02:42:ac:10:56:2a"}
	r := e.add(l, rt)
	if r.IPs[0].Address.String() != "172.16.86.42/24" || r.Interfaces[0].Mac != "02:42:ac:10:56:2a" {
		t.Errorf("ADD result %v %v; want 172.16.86.42/24 and 02:42:ac:10:56:2a", r.IPs[0], r.Interfaces[0])
	}
	// The configuration's dns (a well-known key) is the result's.
	if !slices.Equal(r.DNS.Nameservers, []string{"172.16.86.53"}) || !slices.Equal(r.DNS.Search, []string{"lan"}) {
		t.Errorf("ADD result's dns %+v; want the configuration's: nameserver 172.16.86.53, search lan", r.DNS)
	}
	if got := addrs(t, rt.NetNS, "eth0"); !strings.Contains(got, "172.16.86.42/24") {
		t.Errorf("the container's eth0: %q; want 172.16.86.42/24", got)
	}
	if got := macOf(t, rt.NetNS, "eth0"); got != "02:42:ac:10:56:2a" {
		t.Errorf("the container's MAC: %s; want 02:42:ac:10:56:2a", got)
	}
	// A repeated ADD of the attachment asking for another address or MAC
	// is not answered with the endpoint it has: refused, naming both.
	for _, other := range []map[string]any{
		{"ips": []string{"172.16.86.43/24"}, "mac": "02:42:ac:10:56:2a"},
		{"ips": []string{"172.16.86.42/24"}, "mac": "02:42:ac:10:56:2b"},
	} {
		again := *rt
		again.CapabilityArgs = other
		if _, err := e.cni.AddNetworkList(context.Background(), l, &again); cniCode(err) != errConflict || !strings.Contains(err.Error(), "DEL the attachment first") {
			t.Errorf("a repeated ADD asking for %v: %v; want code %d saying to DEL it first", other, err, errConflict)
		}
	}
	if got := addrs(t, rt.NetNS, "eth0"); !strings.Contains(got, "172.16.86.42/24") || len(e.endpoints()) != 1 {
		t.Errorf("after the refused repeats: eth0 %q, %d endpoints; want 172.16.86.42/24 on the one endpoint", got, len(e.endpoints()))
	}
	if again := e.add(l, rt); again.IPs[0].Address.String() != "172.16.86.42/24" { // the same request still is answered
		t.Errorf("a repeated ADD of the same request: %v; want 172.16.86.42/24", again.IPs[0])
	}
	e.del(l, rt)
}

// stats is the pub_net line of `mvlan stats`.
func (e *env) stats() api.NetworkStats {
	e.t.Helper()
	cl := api.NewClient(e.a.Socket)
	defer cl.Close()
	s, err := cl.Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, n := range s.Networks {
		if n.Network == "pub_net" {
			return n
		}
	}
	e.t.Fatalf("mvlan stats has no pub_net: %+v", s.Networks)
	return api.NetworkStats{}
}

func ping(ns string, args ...string) (string, error) {
	return nstest.RunErr(ns, append([]string{"ping", "-i", "0.2", "-W", "1"}, args...)...)
}

// TestCNITraffic: two containers attached through CNI ping each other;
// the network's counters move by the echoes (each endpoint counts its own
// frames, plus a few ARP), and a container that sends from an address it
// was not given is not heard and is counted as dropped.
func TestCNITraffic(t *testing.T) {
	const pings, arpSlack = 5, 4
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", `"capabilities":{"ips":true}`)
	c1, c2 := e.container("t1"), e.container("t2")
	c1.CapabilityArgs = map[string]any{"ips": []string{"172.16.86.10"}}
	c2.CapabilityArgs = map[string]any{"ips": []string{"172.16.86.11"}}
	e.add(l, c1)
	e.add(l, c2)
	before := e.stats()
	if out, err := ping(c1.NetNS, "-c", fmt.Sprint(pings), "172.16.86.11"); err != nil {
		t.Fatalf("ping from c1 to c2: %v\n%s", err, out)
	}
	after := e.stats()
	for _, c := range []struct {
		what     string
		from, to uint64
	}{{"rx", before.Rx.Packets, after.Rx.Packets}, {"tx", before.Tx.Packets, after.Tx.Packets}} {
		if d := c.to - c.from; d < 2*pings || d > 2*pings+arpSlack {
			t.Errorf("pub_net %s packets moved by %d for %d echoes between two containers; want %d..%d", c.what, d, pings, 2*pings, 2*pings+arpSlack)
		}
	}
	nstest.RunErr(c2.NetNS, "ip", "addr", "add", "172.16.86.99/24", "dev", "eth0")
	if out, err := ping(c2.NetNS, "-c", "2", "-I", "172.16.86.99", "172.16.86.10"); err == nil {
		t.Errorf("ping from a spoofed source got through:\n%s", out)
	}
	// Counted: 2 echo requests from .99, one frame each (ping sends a
	// request its send refused again), to c1, whose MAC c2 knows from the
	// pings: 2 ip_spoof drops, each refused on c2's egress (ENOBUFS).
	before = e.stats()
	errs, err := nstest.SendEchoes(c2.NetNS, netip.MustParseAddr("172.16.86.99"), netip.MustParseAddr("172.16.86.10"), 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if !errors.Is(err, unix.ENOBUFS) {
			t.Errorf("spoofed echo request %d of 2: %v; want ENOBUFS (dropped on c2's egress)", i+1, err)
		}
	}
	spoofed := e.stats()
	if b, a := before.Drops["ip_spoof"].Packets, spoofed.Drops["ip_spoof"].Packets; a != b+2 {
		t.Errorf("pub_net's ip_spoof drops moved by %d (from %d to %d) for 2 spoofed echo requests; want 2: %+v", a-b, b, a, spoofed.Drops)
	}
	if out, err := ping(c2.NetNS, "-c", "1", "172.16.86.10"); err != nil {
		t.Errorf("c2's own address no longer works after the spoofing: %v\n%s", err, out)
	}
	e.del(l, c1)
	e.del(l, c2)
	e.noDrift()
}

// TestCNIStatus: STATUS succeeds with the agent up and the network there;
// it fails with code 50 when the network is missing, has no free address,
// or the agent is down (naming the socket), and ADD then fails with 11,
// try again later.
func TestCNIStatus(t *testing.T) {
	e := newEnv(t)
	l := e.list("1.1.0", "")
	if err := e.cni.GetStatusNetworkList(context.Background(), l); cniCode(err) != errUnavailable || !strings.Contains(err.Error(), "pub_net") {
		t.Errorf("STATUS without the network: %v; want code %d naming pub_net", err, errUnavailable)
	}
	e.pubNet()
	if err := e.cni.GetStatusNetworkList(context.Background(), l); err != nil {
		t.Errorf("STATUS with the agent up: %v", err)
	}
	// An inline definition that pub_net does not match: ADD would refuse it.
	other := e.list("1.1.0", `"subnets":["10.5.0.0/24"],"parent":"eth0"`)
	if err := e.cni.GetStatusNetworkList(context.Background(), other); cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "not 10.5.0.0/24") {
		t.Errorf("STATUS of a definition pub_net does not match: %v; want code %d naming the subnets", err, types.ErrInvalidNetworkConfig)
	}
	// A network whose range is all held: ADD would fail, so STATUS does
	// (50); one address released, it answers again.
	e.sb.AddVeth(t, "eth1")
	e.a.CLI("network", "create", "--subnet=10.6.0.0/24", "--ip-range=10.6.0.8/30", "-o", "parent=eth1", "tiny")
	tiny := e.list("1.1.0", `"network":"tiny"`)
	var held []*libcni.RuntimeConf
	for i := range 5 {
		rt := e.container(fmt.Sprintf("t%d", i))
		if _, err := e.cni.AddNetworkList(context.Background(), tiny, rt); err != nil {
			if len(held) == 0 || cniCode(err) != errConflict {
				t.Fatalf("ADD %d to tiny: %v", i, err)
			}
			break
		}
		held = append(held, rt)
	}
	if err := e.cni.GetStatusNetworkList(context.Background(), tiny); cniCode(err) != errUnavailable || !strings.Contains(err.Error(), "no free address") {
		t.Errorf("STATUS with tiny's %d addresses held: %v; want code %d saying it has no free address", len(held), err, errUnavailable)
	}
	e.del(tiny, held[0])
	if err := e.cni.GetStatusNetworkList(context.Background(), tiny); err != nil {
		t.Errorf("STATUS with an address of tiny free again: %v", err)
	}
	for _, rt := range held[1:] {
		e.del(tiny, rt)
	}
	e.a.Stop()
	err := e.cni.GetStatusNetworkList(context.Background(), l)
	if cniCode(err) != errUnavailable || !strings.Contains(err.Error(), e.a.Socket) {
		t.Errorf("STATUS with the agent down: %v; want code %d naming %s", err, errUnavailable, e.a.Socket)
	}
	rt := e.container("d")
	_, err = e.cni.AddNetworkList(context.Background(), l, rt)
	if cniCode(err) != types.ErrTryAgainLater || !strings.Contains(err.Error(), e.a.Socket) {
		t.Errorf("ADD with the agent down: %v; want code 11 naming %s", err, e.a.Socket)
	}
	e.a.Start()
	if err := e.cni.GetStatusNetworkList(context.Background(), l); err != nil {
		t.Errorf("STATUS after the agent came back: %v", err)
	}
}

// TestCNIInline: a network defined in the configuration is created by the
// first ADD, used as is by the next, and a configuration that defines it
// differently is refused (see TestCNIBadConfig); a dual-stack one, and a
// host-only one (no parent: internal).
func TestCNIInline(t *testing.T) {
	e := newEnv(t)
	e.sb.AddVeth(t, "eth1")
	def := `"network":"inl","parent":"eth1","mode":"private","subnets":["10.9.0.0/24"],"ranges":["10.9.0.128/25"],"gateway":"10.9.0.254"`
	l := e.list("1.0.0", def)
	c1, c2 := e.container("i1"), e.container("i2")
	r1, r2 := e.add(l, c1), e.add(l, c2)
	if r1.IPs[0].Address.String() != "10.9.0.128/24" || r2.IPs[0].Address.String() != "10.9.0.129/24" || r1.IPs[0].Gateway.String() != "10.9.0.254" {
		t.Errorf("addresses %v, %v; want 10.9.0.128/24 and 10.9.0.129/24 from the range, gateway 10.9.0.254", r1.IPs[0], r2.IPs[0])
	}
	cl := api.NewClient(e.a.Socket)
	defer cl.Close()
	n, err := cl.Network(context.Background(), "inl")
	if err != nil {
		t.Fatalf("the network the first ADD made: %v", err)
	}
	if n.Name != "inl" || n.Parent != "eth1" || n.Mode != "private" || len(n.Pools) != 1 || n.Pools[0].IPRange.String() != "10.9.0.128/25" {
		t.Errorf("the network the first ADD made: %+v; want inl on eth1, private, range 10.9.0.128/25", n)
	}
	e.del(l, c1)
	e.del(l, c2)

	// Dual stack: one address of each family, each with its gateway and
	// default route, both on the container's link.
	e.sb.AddVeth(t, "eth2")
	l6 := e.list("1.1.0", `"network":"inl6","parent":"eth2","ipv6":true,"subnets":["10.8.0.0/24","fd00:8::/64"]`)
	c3 := e.container("i3")
	r3 := e.add(l6, c3)
	if len(r3.IPs) != 2 || r3.IPs[0].Address.String() != "10.8.0.2/24" || r3.IPs[1].Address.String() != "fd00:8::2/64" ||
		r3.IPs[1].Gateway.String() != "fd00:8::1" || len(r3.Routes) != 2 {
		t.Errorf("dual-stack ADD: ips %v routes %v; want 10.8.0.2/24 and fd00:8::2/64 with gateways .1 and ::1, two default routes", r3.IPs, r3.Routes)
	}
	if out, _ := nstest.RunErr(c3.NetNS, "ip", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, "fd00:8::2/64") {
		t.Errorf("the container's eth0 has no fd00:8::2/64:\n%s", out)
	}
	e.del(l6, c3)

	// Host-only (no parent): internal, as the network the first ADD
	// makes is; the next ADD finds it matching; no default route.
	lh := e.list("1.1.0", `"network":"inho","subnets":["10.7.0.0/24"]`)
	c4, c5 := e.container("i4"), e.container("i5")
	r4, r5 := e.add(lh, c4), e.add(lh, c5)
	if len(r4.Routes) != 0 || len(r5.Routes) != 0 || r5.IPs[0].Address.String() != "10.7.0.3/24" {
		t.Errorf("host-only ADDs: %v routes %v, %v routes %v; want 10.7.0.2 and .3, no default route", r4.IPs, r4.Routes, r5.IPs, r5.Routes)
	}
	if err := e.cni.GetStatusNetworkList(context.Background(), lh); err != nil {
		t.Errorf("STATUS of the host-only network: %v", err)
	}
	e.del(lh, c4)
	e.del(lh, c5)
}

// TestCNIInlineAltname: an inline definition whose parent is an altname
// of eth1 creates the network on eth1 (which the agent shows by that
// name), and later ADDs and STATUS find it matching; another link's name
// still does not match.
func TestCNIInlineAltname(t *testing.T) {
	e := newEnv(t)
	e.sb.AddVeth(t, "eth1")
	e.sb.AddVeth(t, "eth2")
	e.sb.Run(t, e.sb.Path, "ip", "link", "property", "add", "dev", "eth1", "altname", "lan1")
	l := e.list("1.1.0", `"network":"alt","parent":"lan1","subnets":["10.7.0.0/24"]`)
	c1, c2 := e.container("a1"), e.container("a2")
	e.add(l, c1)
	e.add(l, c2)
	if err := e.cni.GetStatusNetworkList(context.Background(), l); err != nil {
		t.Errorf("STATUS of the definition on altname lan1: %v", err)
	}
	if eps := e.endpoints(); len(eps) != 2 {
		t.Errorf("endpoints after two ADDs: %+v; want two", eps)
	}
	other := e.list("1.1.0", `"network":"alt","parent":"eth2","subnets":["10.7.0.0/24"]`)
	if err := e.cni.GetStatusNetworkList(context.Background(), other); cniCode(err) != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "parent eth1, not eth2") {
		t.Errorf("STATUS of the definition on eth2: %v; want code %d naming the parents", err, types.ErrInvalidNetworkConfig)
	}
	e.del(l, c1)
	e.del(l, c2)
}

// TestCNIBadConfig: each bad configuration or argument is refused with
// the code a runtime acts on and a message naming the bad value, and
// leaves nothing behind: no endpoint, no link in the container, no new
// network, no address held; the DEL the runtime sends next succeeds.
func TestCNIBadConfig(t *testing.T) {
	e := newEnv(t)
	e.sb.AddVeth(t, "eth1")
	e.pubNet()
	var pub api.Network
	if err := json.Unmarshal([]byte(e.a.CLI("network", "inspect", "--format", "{{json .}}", "pub_net")), &pub); err != nil || len(pub.ID) < 4 {
		t.Fatalf("pub_net's ID: %v", err)
	}
	l := e.list("1.1.0", `"capabilities":{"ips":true}`)
	holder := e.container("h")
	holder.CapabilityArgs = map[string]any{"ips": []string{"172.16.86.50"}}
	e.add(l, holder)
	nets := e.a.CLI("network", "ls", "-q")
	for i, c := range []struct {
		name, extra string
		caps        map[string]any
		code        uint
		says        string
	}{
		{"foreign ipam", `"ipam":{"type":"host-local","subnet":"10.1.0.0/24"}`, nil, types.ErrUnsupportedField, `"ipam" (type "host-local")`},
		{"prevResult with a null interface", `"prevResult":{"cniVersion":"1.1.0","interfaces":[null]}`, nil, types.ErrDecodingFailure, "null"},
		{"unknown network", `"network":"nope"`, nil, types.ErrInvalidNetworkConfig, `"nope"`},
		{"bad mode", `"network":"x","subnets":["10.2.0.0/24"],"parent":"eth0","mode":"bridged"`, nil, types.ErrInvalidNetworkConfig, `"bridged"`},
		{"definition without subnets", `"network":"x","parent":"eth0"`, nil, types.ErrInvalidNetworkConfig, `"subnets"`},
		{"other definition", `"subnets":["10.5.0.0/24"],"parent":"eth0"`, nil, types.ErrInvalidNetworkConfig, "subnets 172.16.86.0/24, not 10.5.0.0/24"},
		{"bad inline subnet", `"network":"x","subnets":["10.2.0.0/33"],"parent":"eth1"`, nil, types.ErrInvalidNetworkConfig, "10.2.0.0/33"},
		{"inline subnet of another network", `"network":"x","subnets":["172.16.86.0/24"],"parent":"eth1"`, nil, errConflict, "pub_net"},
		{"address outside an inline network", `"network":"y","subnets":["10.7.0.0/24"],"parent":"eth1","capabilities":{"ips":true}`,
			map[string]any{"ips": []string{"10.99.0.5"}}, types.ErrInvalidNetworkConfig, "10.99.0.5"},
		{"a name that is another network's ID prefix", `"network":"` + pub.ID[:4] + `"`, nil, types.ErrInvalidNetworkConfig, "has no network"},
		{"address outside", `"capabilities":{"ips":true}`, map[string]any{"ips": []string{"10.9.9.9/24"}}, types.ErrInvalidNetworkConfig, "10.9.9.9"},
		{"address taken", `"capabilities":{"ips":true}`, map[string]any{"ips": []string{"172.16.86.50/24"}}, errConflict, "172.16.86.50"},
		{"two IPv4", `"capabilities":{"ips":true}`, map[string]any{"ips": []string{"172.16.86.51", "172.16.86.52"}}, types.ErrInvalidNetworkConfig, "172.16.86.52"},
		{"bad mac", `"capabilities":{"mac":true}`, map[string]any{"mac": "02:42:zz"}, types.ErrInvalidNetworkConfig, "02:42:zz"},
		{"multicast mac", `"capabilities":{"mac":true}`, map[string]any{"mac": "03:00:00:00:00:01"}, types.ErrInvalidNetworkConfig, "03:00:00:00:00:01"},
		{"ipv6 not a boolean", `"ipv6":"yes"`, nil, types.ErrDecodingFailure, "ipv6"},
		{"subnets not a list", `"subnets":"10.0.0.0/24"`, nil, types.ErrDecodingFailure, "subnets"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rt := e.container(fmt.Sprintf("b%d", i))
			rt.CapabilityArgs = c.caps
			l := e.list("1.1.0", c.extra)
			_, err := e.cni.AddNetworkList(context.Background(), l, rt)
			if cniCode(err) != c.code || !strings.Contains(err.Error(), c.says) {
				t.Errorf("ADD: %v; want code %d saying %s", err, c.code, c.says)
			}
			if eps := e.endpoints(); len(eps) != 1 { // before the runtime's DEL too
				t.Errorf("mvlan ps after a refused ADD, before its DEL: %+v; want only the holder", eps)
			}
			if err := e.cni.DelNetworkList(context.Background(), l, rt); err != nil {
				t.Errorf("DEL after the refused ADD: %v; want success", err)
			}
			if eps := e.endpoints(); len(eps) != 1 {
				t.Errorf("mvlan ps after a refused ADD: %+v; want only the holder", eps)
			}
			if out, _ := nstest.RunErr(rt.NetNS, "ip", "-br", "link"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("links in the container after a refused ADD:\n%s", out)
			}
			if got := e.a.CLI("network", "ls", "-q"); got != nets {
				t.Errorf("networks after a refused ADD:\n%s\nwant\n%s", got, nets)
			}
			e.noDrift()
		})
	}
}

// TestCNIDelBadConfig: DEL reads only name, network and socket, so a
// configuration that an operator's typo broke after the ADD (a value
// that does not decode, which ADD refuses with code 6) still releases
// the live attachment: DEL succeeds, `mvlan ps` and the container have
// nothing left, and a second DEL succeeds too.
func TestCNIDelBadConfig(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	for i, typo := range []string{`"ipv6":"yes"`, `"subnets":"10.0.0.0/24"`} {
		t.Run(typo, func(t *testing.T) {
			rt := e.container(fmt.Sprintf("d%d", i))
			e.add(e.list("1.1.0", ""), rt)
			bad := e.list("1.1.0", typo)
			if _, err := e.cni.AddNetworkList(context.Background(), bad, e.container(fmt.Sprintf("n%d", i))); cniCode(err) != types.ErrDecodingFailure {
				t.Errorf("ADD with %s: %v; want code %d", typo, err, types.ErrDecodingFailure)
			}
			for range 2 {
				if err := e.cni.DelNetworkList(context.Background(), bad, rt); err != nil {
					t.Fatalf("DEL with %s: %v; want success\nagent log:\n%s", typo, err, e.a.Log())
				}
			}
			if eps := e.endpoints(); len(eps) != 0 {
				t.Errorf("mvlan ps after DEL with %s: %+v; want none", typo, eps)
			}
			if got := addrs(t, rt.NetNS, "eth0"); got != "" {
				t.Errorf("the container's eth0 after DEL: %q; want no such link", got)
			}
			e.noDrift()
		})
	}
}

// endpoint is the endpoint of `mvlan ps` named name.
func (e *env) endpoint(name string) api.Endpoint {
	e.t.Helper()
	for _, ep := range e.endpoints() {
		if ep.Name == name {
			return ep
		}
	}
	e.t.Fatalf("mvlan ps has no endpoint %s", name)
	return api.Endpoint{}
}

// TestCNIGC: GC releases exactly the attachments of this CNI network that
// are not in the valid list; another CNI network's attachment on the same
// mvlan network and an endpoint made with mvlan run are not touched. The
// runtime's cache is empty (as after a reboot), so libcni itself DELs
// nothing: what goes, the plugin's GC released.
func TestCNIGC(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	c1, c2, c3 := e.container("g1"), e.container("g2"), e.container("g3")
	for _, c := range []*libcni.RuntimeConf{c1, c2, c3} {
		e.add(l, c)
	}
	other := e.list("1.1.0", "")
	other.Name = "othernet" // another runtime's network configuration
	other.Plugins[0].Network.Name = "othernet"
	c4 := e.container("g4")
	e.add(other, c4)
	run := e.sb.Name + "-run"
	e.a.CLI("run", "-d", "--name", run, "--net", "pub_net")
	fresh := libcni.NewCNIConfigWithCacheDir([]string{cniDir}, t.TempDir(), nil)
	valid := []types.GCAttachment{{ContainerID: c1.ContainerID, IfName: "eth0"}}
	if err := fresh.GCNetworkList(context.Background(), l, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		t.Fatalf("GC: %v\nagent log:\n%s", err, e.a.Log())
	}
	var names []string
	for _, ep := range e.endpoints() {
		names = append(names, ep.Name)
	}
	slices.Sort(names)
	want := []string{e.sb.Name + "-g1", e.sb.Name + "-g4", run}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("mvlan ps after GC: %v; want %v (g2 and g3 released)", names, want)
	}
	for _, c := range []*libcni.RuntimeConf{c2, c3} {
		if got := addrs(t, c.NetNS, "eth0"); got != "" {
			t.Errorf("%s after GC: %q; want no eth0", c.ContainerID, got)
		}
	}
	e.noDrift()
	// GC of an empty list releases the rest of this network's attachments.
	if err := fresh.GCNetworkList(context.Background(), l, &libcni.GCArgs{}); err != nil {
		t.Fatal(err)
	}
	if eps := e.endpoints(); len(eps) != 2 {
		t.Errorf("mvlan ps after GC with no valid attachment: %+v; want g4 and %s", eps, run)
	}
	e.a.CLI("rm", "-f", run)
}

// gc runs the plugin's GC as a runtime would that writes the
// configuration itself: mvnet's, with fields (JSON object fields) added.
func (e *env) gc(fields string) error {
	e.t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"mvnet","type":"mvlan","network":"pub_net","socket":%q`, e.a.Socket)
	if fields != "" {
		conf += "," + fields
	}
	return invoke.ExecPluginWithoutResult(context.Background(), filepath.Join(cniDir, "mvlan"), []byte(conf+"}"),
		&invoke.Args{Command: "GC", Path: cniDir}, nil)
}

// names are the endpoints' names in `mvlan ps`, sorted.
func (e *env) names() []string {
	e.t.Helper()
	var names []string
	for _, ep := range e.endpoints() {
		names = append(names, ep.Name)
	}
	slices.Sort(names)
	return names
}

// TestCNIGCKeys: GC reads the valid attachments under the spec's key,
// else under the one CNI 1.1.0 first published (a runtime that sends only
// that one keeps the attachments it lists); a GC with neither key (libcni
// without GC arguments) releases nothing, its attachments stay in `mvlan
// ps` with their addresses; a present empty list still releases all of
// this network's.
func TestCNIGCKeys(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	c1, c2 := e.container("k1"), e.container("k2")
	e.add(l, c1)
	e.add(l, c2)
	both := []string{e.sb.Name + "-k1", e.sb.Name + "-k2"}
	// An empty cache (as after a reboot): libcni itself DELs nothing.
	fresh := libcni.NewCNIConfigWithCacheDir([]string{cniDir}, t.TempDir(), nil)
	if err := fresh.GCNetworkList(context.Background(), l, nil); err != nil {
		t.Fatalf("GC without a list: %v\nagent log:\n%s", err, e.a.Log())
	}
	if err := e.gc(""); err != nil {
		t.Fatalf("GC with neither key: %v", err)
	}
	if got := e.names(); !slices.Equal(got, both) {
		t.Errorf("mvlan ps after GC with neither key: %v; want %v (nothing released)", got, both)
	}
	for _, c := range []*libcni.RuntimeConf{c1, c2} {
		if got := addrs(t, c.NetNS, "eth0"); !strings.Contains(got, "172.16.86.") {
			t.Errorf("%s after GC with neither key: %q; want its address", c.ContainerID, got)
		}
	}
	old := `"cni.dev/attachments":[{"containerID":%q,"ifname":"eth0"}]`
	if err := e.gc(fmt.Sprintf(old, c1.ContainerID)); err != nil {
		t.Fatalf("GC with the old key: %v\nagent log:\n%s", err, e.a.Log())
	}
	if got, want := e.names(), both[:1]; !slices.Equal(got, want) {
		t.Errorf("mvlan ps after GC listing k1 under the old key: %v; want %v (k2 released)", got, want)
	}
	if got := addrs(t, c1.NetNS, "eth0"); !strings.Contains(got, "172.16.86.") {
		t.Errorf("k1 after GC listing it under the old key: %q; want its address", got)
	}
	if got := addrs(t, c2.NetNS, "eth0"); got != "" {
		t.Errorf("k2 after GC not listing it: %q; want no eth0", got)
	}
	e.noDrift()
	if err := e.gc(`"cni.dev/attachments":[]`); err != nil {
		t.Fatal(err)
	}
	if got := e.names(); len(got) != 0 {
		t.Errorf("mvlan ps after GC with an empty list under the old key: %v; want none", got)
	}
}

// TestCNICheckDrift: CHECK fails with code 101, naming what changed, when
// the endpoint's address is removed, a foreign address added, its default
// route gone (from every table: a later plugin may move it), or one of its
// datapath programs detached; a repeated ADD returns the same result,
// and a second pod of the same name gets a name of its own.
func TestCNICheckDrift(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	ctx := context.Background()
	c := e.container("k")
	r := e.add(l, c)
	if again := e.add(l, c); again.IPs[0].Address.String() != r.IPs[0].Address.String() || again.Interfaces[0].Mac != r.Interfaces[0].Mac {
		t.Errorf("a repeated ADD gave %v; want the first result %v", again, r)
	}
	if n := len(e.endpoints()); n != 1 {
		t.Errorf("%d endpoints after a repeated ADD; want 1", n)
	}
	// Another container with the same pod name (another Kubernetes
	// namespace) gets the name with its container ID's first 8 appended.
	twin := e.container("k2")
	twin.Args = c.Args
	e.add(l, twin)
	e.endpoint(e.sb.Name + "-k-" + twin.ContainerID[:8])
	e.del(l, twin)
	addr := r.IPs[0].Address.String()
	for _, step := range []struct {
		what, cmd, says string
	}{
		{"address removed", "ip addr del " + addr + " dev eth0", "address " + addr + " is missing"},
		{"foreign address", "ip addr add " + addr + " dev eth0; ip addr add 172.16.86.99/24 dev eth0", "172.16.86.99/24"},
	} {
		nstest.RunErr(c.NetNS, "sh", "-c", step.cmd)
		if err := e.cni.CheckNetworkList(ctx, l, c); cniCode(err) != errDrift || !strings.Contains(err.Error(), step.says) {
			t.Errorf("CHECK after %s: %v; want code %d saying %q", step.what, err, errDrift, step.says)
		}
	}
	nstest.RunErr(c.NetNS, "ip", "addr", "del", "172.16.86.99/24", "dev", "eth0")
	// The default route went with the address (the link had none left).
	if err := e.cni.CheckNetworkList(ctx, l, c); cniCode(err) != errDrift || !strings.Contains(err.Error(), "no default route via 172.16.86.1 on eth0") {
		t.Errorf("CHECK after the address came back without the default route: %v; want code %d saying so", err, errDrift)
	}
	nstest.RunErr(c.NetNS, "ip", "route", "add", "default", "via", "172.16.86.1")
	if err := e.cni.CheckNetworkList(ctx, l, c); err != nil {
		t.Fatalf("CHECK after the address and route came back: %v", err)
	}
	// A later plugin of the chain may move the route (the spec lets it):
	// sbr puts it in a table of its own, with a rule. Gone from every
	// table, it is drift again.
	nstest.RunErr(c.NetNS, "sh", "-c", "ip route del default via 172.16.86.1 && ip route add default via 172.16.86.1 dev eth0 table 100 && ip rule add from "+r.IPs[0].Address.IP.String()+" table 100")
	if err := e.cni.CheckNetworkList(ctx, l, c); err != nil {
		t.Errorf("CHECK with the default route moved to table 100 (as sbr does): %v", err)
	}
	nstest.RunErr(c.NetNS, "ip", "route", "del", "default", "table", "100")
	if err := e.cni.CheckNetworkList(ctx, l, c); cniCode(err) != errDrift || !strings.Contains(err.Error(), "no default route via 172.16.86.1 on eth0") {
		t.Errorf("CHECK with the moved route deleted: %v; want code %d saying so", err, errDrift)
	}
	nstest.RunErr(c.NetNS, "ip", "route", "add", "default", "via", "172.16.86.1")
	ep := e.endpoint(e.sb.Name + "-k")
	detachEgress(t, e.a.Dir, c.NetNS, ep)
	if err := e.cni.CheckNetworkList(ctx, l, c); cniCode(err) != errDrift || !strings.Contains(err.Error(), "no egress program") {
		t.Errorf("CHECK after the egress program was detached: %v; want code %d saying so", err, errDrift)
	}
	e.del(l, c)
}

// TestCNICheckChainedRoutes: a later plugin of the chain deletes the
// default route mvlan made and takes it out of the result (flushroutes, as
// route-override's flushgateway does): CHECK passes, the spec letting a
// later plugin change routes; the final result is what it checks against,
// so a route that result still lists is looked for (TestCNICheckDrift).
func TestCNICheckChainedRoutes(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	raw := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"mvnet","plugins":[{"type":"mvlan","network":"pub_net","socket":%q},{"type":"flushroutes"}]}`, e.a.Socket)
	l, err := libcni.NetworkConfFromBytes([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := e.container("r")
	r := e.add(l, c)
	if len(r.Routes) != 0 {
		t.Fatalf("the chain's result lists routes %v; want none (flushroutes took them out)", r.Routes)
	}
	if out, _ := nstest.RunErr(c.NetNS, "ip", "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Fatalf("flushroutes left a default route: %q", out)
	}
	if err := e.cni.CheckNetworkList(context.Background(), l, c); err != nil {
		t.Errorf("CHECK after a later plugin removed the default route: %v; want none (its result lists none)", err)
	}
	e.del(l, c)
}

// detachEgress takes the endpoint's egress program off its link the way
// something else in the container's host might: unpinning our TCX link
// (which detaches it) or deleting the cls_bpf filter.
func detachEgress(t *testing.T, agentDir, netns string, ep api.Endpoint) {
	t.Helper()
	var pins []string
	_ = filepath.WalkDir(filepath.Join(agentDir, "bpf"), func(p string, _ fs.DirEntry, _ error) error {
		if filepath.Base(p) == fmt.Sprintf("%d_%d_egress", ep.NetnsCookie, ep.Ifindex) {
			pins = append(pins, p)
		}
		return nil
	})
	switch {
	case len(pins) == 1:
		if err := os.Remove(pins[0]); err != nil {
			t.Fatal(err)
		}
	case len(pins) > 1:
		t.Fatalf("TCX link pins of the endpoint's egress: %v; want at most one", pins)
	default:
		if out, err := nstest.RunErr(netns, "tc", "filter", "del", "dev", ep.IfName, "egress"); err != nil {
			t.Fatalf("tc filter del dev %s egress: %v\n%s", ep.IfName, err, out)
		}
	}
}

// TestCNICrashDuringAdd: the agent dies half way through an ADD (after
// the endpoint is stored, after its link is made, and after its link is
// made while its record has not reached the disk: the commit is held);
// the runtime gets 11 (try again later); once the agent is back, it has
// undone the half attachment (the last one from its intent,
// engine/intent.go), and the runtime's retry of the ADD succeeds with
// one endpoint, one link and no drift.
func TestCNICrashDuringAdd(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	for _, tc := range []struct{ name, point, hold string }{
		{"after-state", "endpoint-create:after-state", ""},
		{"after-link", "endpoint-create:after-link", ""},
		{"after-link-unstored", "endpoint-create:after-link", "endpoint-create:before-state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := e.container(tc.name)
			e.restartCrashing(tc.point, tc.hold, 30*time.Second)
			_, err := e.cni.AddNetworkList(context.Background(), l, rt)
			if cniCode(err) != types.ErrTryAgainLater {
				t.Errorf("ADD during which the agent died: %v; want code 11", err)
			}
			e.a.WaitExit()
			if out, _ := nstest.RunErr(rt.NetNS, "ip", "-br", "link"); tc.hold != "" && !strings.Contains(out, "eth0") {
				t.Fatalf("no link in the namespace after the crash:\n%s\nthe case needs the link made and its record held", out)
			}
			e.a.Env = nil
			e.a.Start()
			e.noDrift()
			r := e.add(l, rt) // the runtime tries again
			if out, _ := nstest.RunErr(rt.NetNS, "ip", "-br", "link"); strings.Count(out, "eth0") != 1 || len(r.IPs) != 1 {
				t.Errorf("after the retry: links\n%s\nresult %v; want one eth0 with one address", out, r)
			}
			if eps := e.endpoints(); len(eps) != 1 {
				t.Errorf("endpoints after the retry: %+v; want one", eps)
			}
			e.noDrift()
			e.del(l, rt)
		})
	}
}

// TestCNIParallel: a runtime starting 8 containers at once (8 plugin
// processes in parallel, as kubelet and Multus do) gets 8 distinct
// addresses and MACs; deleting them at once leaves nothing.
func TestCNIParallel(t *testing.T) {
	const n = 8
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	rts := make([]*libcni.RuntimeConf, n)
	for i := range rts {
		rts[i] = e.container(fmt.Sprintf("par%d", i))
	}
	results := make([]*current.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range rts {
		wg.Go(func() {
			r, err := e.cni.AddNetworkList(context.Background(), l, rts[i])
			if err == nil {
				results[i], err = current.NewResultFromResult(r)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	addrs, macs := map[string]bool{}, map[string]bool{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("parallel ADD %d: %v\nagent log:\n%s", i, errs[i], e.a.Log())
		}
		addrs[r.IPs[0].Address.String()], macs[r.Interfaces[0].Mac] = true, true
	}
	if len(addrs) != n || len(macs) != n || len(e.endpoints()) != n {
		t.Errorf("%d addresses, %d MACs, %d endpoints after %d parallel ADDs; want %d of each", len(addrs), len(macs), len(e.endpoints()), n, n)
	}
	e.noDrift()
	for i := range rts {
		wg.Go(func() { errs[i] = e.cni.DelNetworkList(context.Background(), l, rts[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("parallel DEL %d: %v", i, err)
		}
	}
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after parallel DELs: %+v", eps)
	}
	e.noDrift()
}

// TestCNISamePodName: two pods of one name (in two Kubernetes
// namespaces) added at once, both held in the agent after their endpoint
// is named and before it is admitted: both ADDs succeed, one endpoint
// named after the pod, the other after the pod and its container ID.
func TestCNISamePodName(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	e.restartHolding("endpoint-create:before-admit", nstest.Slow(time.Second))
	l := e.list("1.1.0", "")
	pod := e.sb.Name + "-web"
	rts := []*libcni.RuntimeConf{e.container("s1"), e.container("s2")}
	errs := make([]error, len(rts))
	var wg sync.WaitGroup
	for i, rt := range rts {
		rt.Args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", pod}}
		wg.Go(func() { _, errs[i] = e.cni.AddNetworkList(context.Background(), l, rt) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("ADD %d of pod %s: %v\nagent log:\n%s", i, pod, err, e.a.Log())
		}
	}
	names := map[string]bool{}
	for _, ep := range e.endpoints() {
		names[ep.Name] = true
	}
	alt0, alt1 := pod+"-"+rts[0].ContainerID[:8], pod+"-"+rts[1].ContainerID[:8]
	if len(names) != 2 || !names[pod] || !names[alt0] && !names[alt1] {
		t.Errorf("endpoints %v; want %s and one of %s, %s", slices.Sorted(maps.Keys(names)), pod, alt0, alt1)
	}
	for _, rt := range rts {
		e.del(l, rt)
	}
}

// TestCNIAddDuringDel: an ADD of an attachment whose DEL is still under
// way (held after its "removing" record) waits for the removal and then
// attaches afresh, rather than failing: the runtime gets one new eth0.
func TestCNIAddDuringDel(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	rt := e.container("c1")
	first := e.add(l, rt)
	eps := e.endpoints()
	if len(eps) != 1 {
		t.Fatalf("endpoints after the first ADD: %+v; want one", eps)
	}
	firstID := eps[0].ID
	hold, reach := nstest.Slow(2*time.Second), nstest.Slow(300*time.Millisecond)
	e.restartHolding("endpoint-rm:after-state", hold)
	delDone := make(chan error, 1)
	t0 := time.Now()
	go func() { delDone <- e.cni.DelNetworkList(context.Background(), l, rt) }()
	time.Sleep(reach) // the DEL is held in the agent by then
	select {
	case err := <-delDone:
		t.Fatalf("the DEL (%v) was over before the ADD was sent: the hold did not take", err)
	default:
	}
	r := e.add(l, rt)
	if d := time.Since(t0); d < hold {
		t.Fatalf("the ADD answered %v after the DEL was sent, before the DEL's hold (%v) was over: it did not wait", d, hold)
	}
	// The agent answered the DEL before the ADD (the ADD waited out the
	// hold); the DEL's plugin process may still be exiting, under load.
	select {
	case err := <-delDone:
		if err != nil {
			t.Fatalf("DEL: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the DEL it raced never finished")
	}
	eps = e.endpoints()
	if len(eps) != 1 || len(r.IPs) != 1 || eps[0].ID == "" || eps[0].ID == firstID {
		t.Fatalf("after ADD during DEL: endpoints %+v (the first was %s), result %v; want one new endpoint, one address", eps, firstID, r)
	}
	if out, _ := nstest.RunErr(rt.NetNS, "ip", "-br", "link"); strings.Count(out, "eth0") != 1 {
		t.Errorf("links after ADD during DEL:\n%s\nwant one eth0", out)
	}
	if a := addrs(t, rt.NetNS, "eth0"); !strings.Contains(a, r.IPs[0].Address.String()) {
		t.Errorf("eth0: %s; want the new result's %s (first ADD had %s)", a, r.IPs[0].Address.String(), first.IPs[0].Address.String())
	}
	e.a.Stop()
	e.a.Env = nil
	e.a.Start()
	e.noDrift()
	e.del(l, rt)
}

// linkNames are the links of namespace ns (`ip -o link`), sorted.
func linkNames(t *testing.T, ns string) []string {
	t.Helper()
	out, err := nstest.RunErr(ns, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatalf("links of %s: %v\n%s", ns, err, out)
	}
	var names []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= 2 {
			names = append(names, strings.TrimSuffix(f[1], ":"))
		}
	}
	slices.Sort(names)
	return names
}

// attachmentIn checks that the agent has one endpoint of rt's identity,
// in rt's namespace, named name, not old, with r's address and MAC on
// its eth0; it returns its ID.
func (e *env) attachmentIn(t *testing.T, rt *libcni.RuntimeConf, r *current.Result, name, old string) string {
	t.Helper()
	mine := e.endpointsOf(rt)
	if len(mine) != 1 || mine[0].Netns != rt.NetNS || mine[0].Name != name || mine[0].ID == old || mine[0].State != "ready" {
		t.Fatalf("endpoints of container %s: %+v; want one, %s, ready, in %s (not %s)", rt.ContainerID, mine, name, rt.NetNS, old)
	}
	addr := r.IPs[0].Address.String()
	if got := addrs(t, rt.NetNS, "eth0"); !strings.Contains(got, addr) || macOf(t, rt.NetNS, "eth0") != r.Interfaces[0].Mac {
		t.Errorf("eth0 in %s: %q, MAC %s; want %s and %s (the result's)", rt.NetNS, got, macOf(t, rt.NetNS, "eth0"), addr, r.Interfaces[0].Mac)
	}
	if ps := e.a.CLI("ps"); strings.Count(ps, " "+addr) != 1 {
		t.Errorf("mvlan ps:\n%s\nwant %s once", ps, addr)
	}
	return mine[0].ID
}

// addFrom is the ADD of rt's identity from a new namespace (suffix), as a
// runtime that made the sandbox again after a DEL that never came sends
// it; with static, asking for the address and MAC of old's result.
func (e *env) addFrom(t *testing.T, l *libcni.NetworkConfigList, rt *libcni.RuntimeConf, suffix string, old *current.Result) (*libcni.RuntimeConf, *current.Result) {
	t.Helper()
	again := *rt
	again.NetNS = e.sb.Netns(t, suffix)
	if old != nil {
		again.CapabilityArgs = map[string]any{"ips": []string{old.IPs[0].Address.String()}, "mac": old.Interfaces[0].Mac}
	}
	r, err := e.cni.AddNetworkList(context.Background(), l, &again)
	if err != nil {
		t.Fatalf("ADD of container %s from a new namespace, %s: code %d: %v\nagent log:\n%s", rt.ContainerID, again.NetNS, cniCode(err), err, e.a.Log())
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	if old != nil && (res.IPs[0].Address.String() != old.IPs[0].Address.String() || res.Interfaces[0].Mac != old.Interfaces[0].Mac) {
		t.Errorf("ADD asking for the old attachment's address and MAC: %v; want %v", res, old)
	}
	return &again, res
}

// stillAttached fails t unless endpoint id is there, ready: a late DEL
// of the attachment it replaced left it.
func (e *env) stillAttached(t *testing.T, id string) {
	t.Helper()
	for _, ep := range e.endpoints() {
		if ep.ID == id && ep.State == "ready" {
			return
		}
	}
	t.Errorf("endpoint %s is gone after a DEL from the namespace of the attachment it replaced: %+v", id, e.endpoints())
}

// lateCheck: a CHECK from the namespace of an attachment that an ADD
// from another replaced answers 3 (container unknown there), naming the
// namespace, rather than checking the new attachment.
func (e *env) lateCheck(t *testing.T, l *libcni.NetworkConfigList, old *libcni.RuntimeConf) {
	t.Helper()
	err := e.cni.CheckNetworkList(context.Background(), l, old)
	if cniCode(err) != types.ErrUnknownContainer || !strings.Contains(err.Error(), old.NetNS) {
		t.Errorf("CHECK from the replaced attachment's namespace %s: code %d: %v; want code %d naming it", old.NetNS, cniCode(err), err, types.ErrUnknownContainer)
	}
}

// TestCNIAddWithoutDel: a runtime whose DEL never came (it crashed, or
// made the sandbox again) ADDs the same container ID and interface from a
// new namespace: the ADD replaces the old attachment, whether the old
// namespace leaked (it is left with the links it had before the first
// ADD) or is gone and the ADD comes before the agent's sweep notices
// (held here), and the new one may ask for the old one's address and
// MAC. A repeated ADD from the same namespace is answered with the
// attachment it made, before and after; a CHECK or DEL that comes late
// from the old namespace leaves the new attachment alone.
func TestCNIAddWithoutDel(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	e.restartHolding("sweep:before-release", nstest.Slow(20*time.Second))
	l := e.list("1.1.0", `"capabilities":{"ips":true,"mac":true}`)
	repeat := func(t *testing.T, rt *libcni.RuntimeConf, r *current.Result, pod, id string) {
		t.Helper()
		again := e.add(l, rt)
		if again.IPs[0].Address.String() != r.IPs[0].Address.String() || again.Interfaces[0].Mac != r.Interfaces[0].Mac {
			t.Errorf("a repeated ADD from the same namespace gave %v; want the result before %v", again, r)
		}
		if got := e.attachmentIn(t, rt, again, pod, ""); got != id {
			t.Errorf("a repeated ADD from the same namespace made endpoint %s; want %s, the one it had", got, id)
		}
	}
	t.Run("leaked", func(t *testing.T) {
		rt, pod := e.container("leak"), e.sb.Name+"-leak"
		before := linkNames(t, rt.NetNS)
		first := e.add(l, rt)
		id := e.attachmentIn(t, rt, first, pod, "")
		repeat(t, rt, first, pod, id)
		again, r := e.addFrom(t, l, rt, "leak-2", nil)
		id2 := e.attachmentIn(t, again, r, pod, id)
		if got := linkNames(t, rt.NetNS); !slices.Equal(got, before) {
			t.Errorf("links of the old namespace after the ADD from a new one: %v; want %v, as before the first ADD", got, before)
		}
		repeat(t, again, r, pod, id2)
		e.lateCheck(t, l, rt)
		e.del(l, rt) // late, from the old namespace
		e.stillAttached(t, id2)
		e.noDrift()
		e.del(l, again)
	})
	t.Run("gone", func(t *testing.T) {
		rt, pod := e.container("gone"), e.sb.Name+"-gone"
		first := e.add(l, rt)
		id := e.attachmentIn(t, rt, first, pod, "")
		if out, err := exec.Command("ip", "netns", "del", filepath.Base(rt.NetNS)).CombinedOutput(); err != nil {
			t.Fatalf("ip netns del %s: %v\n%s", rt.NetNS, err, out)
		}
		again, r := e.addFrom(t, l, rt, "gone-2", first)
		id2 := e.attachmentIn(t, again, r, pod, id)
		e.lateCheck(t, l, rt)
		e.del(l, rt) // late, from the old namespace's path
		e.stillAttached(t, id2)
		e.noDrift()
		e.del(l, again)
	})
	t.Run("reborn", func(t *testing.T) {
		// The sandbox made again under its name: a new namespace at the
		// old path, with the old one's inode (the kernel's lowest free).
		rt, pod := e.container("reborn"), e.sb.Name+"-reborn"
		first := e.add(l, rt)
		id := e.attachmentIn(t, rt, first, pod, "")
		nstest.RebornNetns(t, rt.NetNS)
		r := e.add(l, rt)
		id2 := e.attachmentIn(t, rt, r, pod, id)
		repeat(t, rt, r, pod, id2)
		e.noDrift()
		e.del(l, rt)
	})
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after DEL: %+v; want none", eps)
	}
}

// TestCNISweepReborn: the runtime made the sandbox again under its name
// (a new namespace at the old path, with the old one's inode) and the
// DEL of the old attachment never came: the agent releases the
// attachment once it hears the old namespace go, as for any namespace
// gone, though a namespace is at its path with its inode; and at its
// start, when that happened while it was down, without making a link in
// the new namespace.
func TestCNISweepReborn(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.1.0", "")
	t.Run("running", func(t *testing.T) {
		rt := e.container("sr")
		r := e.add(l, rt)
		e.attachmentIn(t, rt, r, e.sb.Name+"-sr", "")
		// The agent hears a namespace go once it has given it an ID (its
		// tamper check, within a second of the attach).
		name := filepath.Base(rt.NetNS)
		waitFor(t, 5*time.Second, "an ID for "+name+" in the agent's namespace", func() bool {
			out, _ := nstest.RunErr(e.sb.Path, "ip", "netns", "list-id")
			return strings.Contains(out, "name: "+name+")")
		})
		nstest.RebornNetns(t, rt.NetNS)
		mac := e.strangerLink(t, rt.NetNS)
		waitFor(t, 5*time.Second, "the attachment of the namespace gone released", func() bool { return len(e.endpointsOf(rt)) == 0 })
		if ps := e.a.CLI("ps"); strings.Contains(ps, r.IPs[0].Address.IP.String()) {
			t.Errorf("mvlan ps after the release:\n%s\nwant no %s", ps, r.IPs[0].Address.IP)
		}
		strangerKept(t, rt.NetNS, mac)
	})
	t.Run("restart", func(t *testing.T) {
		rt := e.container("sr2")
		e.add(l, rt)
		e.a.Stop()
		nstest.RebornNetns(t, rt.NetNS)
		mac := e.strangerLink(t, rt.NetNS)
		e.a.Start()
		if eps := e.endpointsOf(rt); len(eps) != 0 {
			t.Errorf("endpoints of container %s after a start with its namespace made again: %+v; want none", rt.ContainerID, eps)
		}
		if got := linkNames(t, rt.NetNS); !slices.Equal(got, []string{"lo", "m0@if2"}) {
			t.Errorf("links of the namespace made again after the start: %v; want [lo m0@if2], the stranger's only", got)
		}
		strangerKept(t, rt.NetNS, mac)
	})
	// An agent that hears no namespace go (no tamper check) finds the
	// namespace made again by the sweep's rolling look at cookies.
	t.Run("unheard", func(t *testing.T) {
		e := newEnv(t, "--tamper-check", "0")
		e.pubNet()
		l := e.list("1.1.0", "")
		rt := e.container("su")
		e.add(l, rt)
		nstest.RebornNetns(t, rt.NetNS)
		mac := e.strangerLink(t, rt.NetNS)
		waitFor(t, 5*time.Second, "the attachment of the namespace gone released", func() bool { return len(e.endpointsOf(rt)) == 0 })
		strangerKept(t, rt.NetNS, mac)
	})
}

// strangerLink puts a link in the namespace at ns that is not mvlan's,
// as the new owner of a namespace made again could: a macvlan "m0" on
// the network's parent, with ifindex 2 there (the first link a new
// namespace gets, as the old endpoint's had). It returns m0's MAC.
func (e *env) strangerLink(t *testing.T, ns string) string {
	t.Helper()
	e.sb.Run(t, e.sb.Path, "ip", "link", "add", "link", "eth0", "name", "m0", "netns", filepath.Base(ns), "index", "2", "type", "macvlan")
	return macOf(t, ns, "m0")
}

// strangerKept fails t unless m0 (strangerLink) is still in ns, ifindex 2,
// with its MAC: nothing mvlan did to the old endpoint reached it.
func strangerKept(t *testing.T, ns, mac string) {
	t.Helper()
	out, err := nstest.RunErr(ns, "ip", "-o", "link", "show", "dev", "m0")
	if err != nil || !strings.HasPrefix(out, "2: m0@") || macOf(t, ns, "m0") != mac {
		t.Errorf("the other link in the namespace made again: %q, %v; want m0, ifindex 2, MAC %s, as it was made", out, err, mac)
	}
}

// endpointsOf are the agent's endpoints of rt's container and interface.
func (e *env) endpointsOf(rt *libcni.RuntimeConf) []api.Endpoint {
	var mine []api.Endpoint
	for _, ep := range e.endpoints() {
		if ep.CNI != nil && ep.CNI.ContainerID == rt.ContainerID && ep.CNI.IfName == rt.IfName {
			mine = append(mine, ep)
		}
	}
	return mine
}

// waitFor polls cond every 50 ms until it holds, failing t after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited %v for %s", d, what)
		}
	}
}

// TestCNICheckReleased: CHECK of an attachment released meanwhile answers
// 3 (container unknown: nothing to DEL), naming the container, while
// the release finishes in the agent (held after the link lost its
// addresses: the agent still has the endpoint, "removing", when CHECK
// looks it up) and after.
func TestCNICheckReleased(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	e.restartHolding("endpoint-rm:after-down", nstest.Slow(2*time.Second))
	l := e.list("1.1.0", "")
	rt := e.container("r")
	e.add(l, rt)
	ctx := context.Background()
	cl := api.NewClient(e.a.Socket)
	defer cl.Close()
	at := api.CNIAttachment{Network: l.Name, ContainerID: rt.ContainerID, IfName: rt.IfName}
	if err := cl.CNIRelease(ctx, "pub_net", at, ""); err != nil { // another DEL, a GC
		t.Fatal(err)
	}
	if ep, err := cl.CNIEndpoint(ctx, "pub_net", at, ""); err != nil || ep.State != "removing" {
		t.Fatalf("the agent's endpoint after the release: %+v, %v; want it still there, removing (the hold did not take)", ep, err)
	}
	for _, when := range []string{"while the release finishes", "after the release"} {
		err := e.cni.CheckNetworkList(ctx, l, rt)
		if cniCode(err) != types.ErrUnknownContainer || !strings.Contains(err.Error(), rt.ContainerID) {
			t.Errorf("CHECK %s: code %d: %v; want code %d naming container %s", when, cniCode(err), err, types.ErrUnknownContainer, rt.ContainerID)
		}
	}
	e.del(l, rt)
}

// TestCNIDelAgentDown: with the agent down, DEL of an attachment whose
// namespace path is gone succeeds (the agent releases what is left of it
// when it starts), and DEL of one whose namespace is there
// fails with 11 naming the socket; the agent back, that DEL succeeds and
// no endpoint is left.
func TestCNIDelAgentDown(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	l := e.list("1.0.0", "")
	gone, alive := e.container("gone"), e.container("alive")
	e.add(l, gone)
	e.add(l, alive)
	e.a.Stop()
	if out, err := exec.Command("ip", "netns", "del", filepath.Base(gone.NetNS)).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v: %s", err, out)
	}
	if err := e.cni.DelNetworkList(context.Background(), l, gone); err != nil {
		t.Errorf("DEL with the agent down and the namespace gone: %v; want success", err)
	}
	err := e.cni.DelNetworkList(context.Background(), l, alive)
	if cniCode(err) != types.ErrTryAgainLater || !strings.Contains(err.Error(), e.a.Socket) {
		t.Errorf("DEL with the agent down and the namespace there: %v; want code 11 naming %s", err, e.a.Socket)
	}
	e.a.Start()
	e.del(l, alive)
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after the agent came back and the DEL: %+v; want none", eps)
	}
}

// TestCNISocketPermission: a plugin run by a user that may not use the
// agent's socket (rootless Podman's, say) is told so, with what to do, and
// not to try again later (11): ADD fails with 5 (I/O failure), STATUS with
// 50, each naming the permission and --socket-group. The agent is up.
func TestCNISocketPermission(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	e := newEnv(t)
	e.pubNet()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(dir, "mvlan")
	if out, err := exec.Command("cp", filepath.Join(cniDir, "mvlan"), plugin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"mvnet","type":"mvlan","network":"pub_net","socket":%q}`, e.a.Socket)
	ns := e.sb.Netns(t, "p")
	for _, tc := range []struct {
		cmd  string
		code uint
	}{{"ADD", types.ErrIOFailure}, {"STATUS", errUnavailable}} {
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", plugin)
		cmd.Env = []string{"CNI_COMMAND=" + tc.cmd, "CNI_CONTAINERID=ctr-p", "CNI_NETNS=" + ns, "CNI_IFNAME=eth0", "CNI_PATH=" + dir}
		cmd.Stdin = strings.NewReader(conf)
		out, _ := cmd.Output()
		var got types.Error
		if err := json.Unmarshal(out, &got); err != nil || got.Code != tc.code ||
			!strings.Contains(got.Msg, "permission") || !strings.Contains(got.Msg, "--socket-group") {
			t.Errorf("%s as uid 65534: %s (%v); want code %d naming the permission and --socket-group", tc.cmd, out, err, tc.code)
		}
	}
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after the refused ADD: %+v; want none", eps)
	}
}
