package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestDockerHandoffFirstFrames: Docker moves a Join's link into the
// sandbox, brings it up and starts the container before the agent can see
// the link there. The container's first frames must reach the other
// endpoints all the same (its ARP, its ping), and they must already hold
// it to its rules: a spoofed ARP from it is dropped at their ingress. The
// test plays dockerd on the plugin socket and keeps the sandbox key from
// naming the container's namespace until then, so the agent cannot have
// finished the handoff: only what Join told the datapath counts.
func TestDockerHandoffFirstFrames(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + filepath.Join(a.dir, "mvt-handoff.sock")}
	a.start()
	p := &pluginConn{t: t, sb: sb, sock: filepath.Join(a.dir, "mvt-handoff.sock")}
	pool := p.call("IpamDriver.RequestPool", map[string]any{"AddressSpace": "mvlan", "Pool": "172.16.87.0/24"})["PoolID"]
	gw := p.call("IpamDriver.RequestAddress", map[string]any{"PoolID": pool, "Address": "",
		"Options": map[string]string{"RequestAddressType": "com.docker.network.gateway"}})["Address"]
	netID := strings.Repeat("5e", 32)
	p.call("NetworkDriver.CreateNetwork", map[string]any{"NetworkID": netID,
		"Options":  map[string]any{"com.docker.network.generic": map[string]string{"parent": "eth0"}},
		"IPv4Data": []map[string]any{{"AddressSpace": "mvlan", "Pool": "172.16.87.0/24", "Gateway": gw}}})

	c1 := sb.Netns(t, "c1")
	addr1 := p.join(netID, pool, strings.Repeat("c1", 32), c1, c1)
	waitEndpoint(t, a, strings.Repeat("c1", 32), "ready")

	// c2's sandbox key is not its namespace yet: the agent cannot finish it.
	key2 := filepath.Join(t.TempDir(), "c2")
	if err := os.WriteFile(key2, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ep2, c2 := strings.Repeat("c2", 32), sb.Netns(t, "c2")
	p.join(netID, pool, ep2, key2, c2)
	before := netDrops(t, a)
	if err := nstest.Ping(c2, addr1.Addr(), 2, 2*time.Second); err != nil {
		t.Errorf("c2's first ping to c1 (%s), before the agent saw c2's link: %v", addr1.Addr(), err)
	}
	if d := netDrops(t, a) - before; d != 0 {
		t.Errorf("%d frames dropped during c2's first ping, want 0", d)
	}
	var mac2 net.HardwareAddr
	if err := nstest.In(c2, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			mac2 = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	gwAddr := netip.MustParsePrefix(gw).Addr()
	before = netDrops(t, a)
	// Broadcast: to c1 through the macvlan bridge and to the wire through
	// the parent (whose egress drops it too, so the send may say ENOBUFS).
	sendEach(t, c2, "eth0", arpRequest(mac2, gwAddr, addr1.Addr()), 1)
	if d := netDrops(t, a) - before; d != 2 {
		t.Errorf("c2 (not finished) claimed the gateway %s in a broadcast ARP: %d drops, want 2 (c1's ingress, the parent's egress)", gwAddr, d)
	}
	if out := sb.Run(t, c1, "ip", "neigh", "show", gwAddr.String()); strings.Contains(out, mac2.String()) {
		t.Errorf("c1 took c2's MAC for the gateway: %s", out)
	}
	for _, e := range a.endpoints() {
		if e.ID == ep2 && e.State == "ready" {
			t.Fatalf("premise: c2 is ready before its sandbox key names its namespace")
		}
	}

	// Docker's sandbox key now names it: the agent finishes c2 as before.
	if err := unix.Mount(c2, key2, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind the sandbox key: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(key2, unix.MNT_DETACH) })
	waitEndpoint(t, a, ep2, "ready")
	if err := nstest.Ping(c2, addr1.Addr(), 2, 2*time.Second); err != nil {
		t.Errorf("c2 ready: ping c1: %v", err)
	}
	if t.Failed() {
		t.Logf("agent log:\n%s", a.log)
	}
}

// playDockerd starts an agent in sb serving Docker's plugin protocol on
// a socket of its own (env: more of the agent's environment), and makes
// network netID there as dockerd does for `docker network create -d
// DRIVER --ipam-driver null -o parent=eth0`: a DHCP network.
func playDockerd(t *testing.T, sb *nstest.Sandbox, netID string, env ...string) (*agentProc, *pluginConn) {
	t.Helper()
	a, p := pluginAgent(t, sb, env...)
	p.call("NetworkDriver.CreateNetwork", map[string]any{"NetworkID": netID,
		"Options":  map[string]any{"com.docker.network.generic": map[string]string{"parent": "eth0"}},
		"IPv4Data": []map[string]any{{"AddressSpace": "null", "Pool": "0.0.0.0/0"}}})
	return a, p
}

// pluginAgent starts an agent in sb serving Docker's plugin protocol on a
// socket of its own (env: more of the agent's environment), and a
// connection to that socket.
func pluginAgent(t *testing.T, sb *nstest.Sandbox, env ...string) (*agentProc, *pluginConn) {
	t.Helper()
	a := newAgent(t, sb)
	sock := filepath.Join(a.dir, "mvt-plugin.sock")
	a.env = append([]string{"MVLAN_PLUGIN_SOCKET=" + sock}, env...)
	a.start()
	return a, &pluginConn{t: t, sb: sb, sock: sock}
}

// pluginConn speaks Docker's plugin protocol to the agent's plugin socket.
type pluginConn struct {
	t    *testing.T
	sb   *nstest.Sandbox
	sock string
}

// call posts body to /method and returns the answer's string fields; it
// fails the test unless the agent answers 200.
func (p *pluginConn) call(method string, body any) map[string]string {
	p.t.Helper()
	status, out := p.post(method, body)
	if status != http.StatusOK {
		p.t.Fatalf("%s: %d (answer %v)", method, status, out)
	}
	str := map[string]string{}
	for k, v := range out {
		if s, ok := v.(string); ok {
			str[k] = s
		}
	}
	if in, ok := out["InterfaceName"].(map[string]any); ok {
		str["SrcName"], _ = in["SrcName"].(string)
	}
	return str
}

// refused posts body to /method and returns the answer's Err; it fails
// the test unless the agent refuses (an answer other than 200, with Err).
func (p *pluginConn) refused(method string, body any) string {
	p.t.Helper()
	status, out := p.post(method, body)
	msg, _ := out["Err"].(string)
	if status == http.StatusOK || msg == "" {
		p.t.Fatalf("%s: %d (answer %v), want a refusal", method, status, out)
	}
	return msg
}

// post posts body to /method and returns the HTTP status and the decoded
// JSON answer.
func (p *pluginConn) post(method string, body any) (int, map[string]any) {
	p.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		p.t.Fatal(err)
	}
	cl := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
		}}}
	resp, err := cl.Post("http://plugin/"+method, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(b))
	if err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		p.t.Fatalf("%s: %s: %v", method, resp.Status, err)
	}
	return resp.StatusCode, out
}

// staticNetwork makes network netID on eth0 with mvlan's IPAM for subnet,
// as dockerd does for `docker network create -d DRIVER --ipam-driver
// mvlan --subnet SUBNET -o parent=eth0`, and returns the pool's ID.
func (p *pluginConn) staticNetwork(netID, subnet string) string {
	p.t.Helper()
	pool := p.call("IpamDriver.RequestPool", map[string]any{"AddressSpace": "mvlan", "Pool": subnet})["PoolID"]
	p.call("NetworkDriver.CreateNetwork", map[string]any{"NetworkID": netID,
		"Options":  map[string]any{"com.docker.network.generic": map[string]string{"parent": "eth0"}},
		"IPv4Data": []map[string]any{{"AddressSpace": "mvlan", "Pool": subnet}}})
	return pool
}

// join does what dockerd does for a container on the network: an address,
// CreateEndpoint, Join with sandbox key key, then the link moved into the
// namespace at ns, named eth0, addressed and up. It returns the address.
func (p *pluginConn) join(netID, pool, ep, key, ns string) netip.Prefix {
	p.t.Helper()
	addr := netip.MustParsePrefix(p.call("IpamDriver.RequestAddress", map[string]any{"PoolID": pool, "Address": ""})["Address"])
	p.call("NetworkDriver.CreateEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep,
		"Interface": map[string]string{"Address": addr.String()}})
	src := p.call("NetworkDriver.Join", map[string]any{"NetworkID": netID, "EndpointID": ep, "SandboxKey": key})["SrcName"]
	if src == "" {
		p.t.Fatalf("Join named no link")
	}
	p.sb.Run(p.t, p.sb.Path, "ip", "link", "set", src, "netns", filepath.Base(ns))
	p.sb.Run(p.t, ns, "ip", "link", "set", src, "name", "eth0")
	p.sb.Run(p.t, ns, "ip", "addr", "add", addr.String(), "dev", "eth0")
	p.sb.Run(p.t, ns, "ip", "link", "set", "eth0", "up")
	return addr
}

// waitEndpoint waits (up to 10 s) until the agent lists endpoint id in
// state.
func waitEndpoint(t *testing.T, a *agentProc, id, state string) {
	t.Helper()
	var last []api.Endpoint
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		last = a.endpoints()
		for _, e := range last {
			if e.ID == id && e.State == state {
				return
			}
		}
	}
	t.Fatalf("endpoint %s not %s within 10 s: %+v\nagent log:\n%s", id, state, last, a.log)
}

// netDrops is what mvlan stats counts as dropped, all reasons, on the
// agent's one network.
func netDrops(t *testing.T, a *agentProc) uint64 {
	t.Helper()
	var st api.Stats
	if err := json.Unmarshal([]byte(a.ok("stats", "--format", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 {
		t.Fatalf("mvlan stats: %d networks, want 1", len(st.Networks))
	}
	var n uint64
	for _, c := range st.Networks[0].Drops {
		n += c.Packets
	}
	return n
}

// TestDockerLeaveAlias: a container changes its link's alias (mvlan's
// mark) before Docker takes the link back (Leave, the move back to the host
// namespace, DeleteEndpoint). The agent still deletes the link there, found
// by its MAC on the parent; left, it would hold the MAC that Docker gives
// the next container with that address. About 3 s.
func TestDockerLeaveAlias(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + filepath.Join(a.dir, "mvt-leave.sock")}
	a.start()
	p := &pluginConn{t: t, sb: sb, sock: filepath.Join(a.dir, "mvt-leave.sock")}
	netID := strings.Repeat("5f", 32)
	pool := p.staticNetwork(netID, "172.16.88.0/24")
	c1, ep := sb.Netns(t, "c1"), strings.Repeat("c1", 32)
	p.join(netID, pool, ep, c1, c1)
	waitEndpoint(t, a, ep, "ready")
	f := strings.Fields(sb.Run(t, c1, "ip", "-o", "link", "show", "eth0"))
	mac := f[slices.Index(f, "link/ether")+1]
	sb.Run(t, c1, "ip", "link", "set", "eth0", "alias", "x")

	p.call("NetworkDriver.Leave", map[string]any{"NetworkID": netID, "EndpointID": ep})
	sb.Run(t, c1, "ip", "link", "set", "eth0", "down", "name", "back0") // its first name, as Docker
	sb.Run(t, c1, "ip", "link", "set", "back0", "netns", filepath.Base(sb.Path))
	p.call("NetworkDriver.DeleteEndpoint", map[string]any{"NetworkID": netID, "EndpointID": ep})
	if out := sb.Run(t, sb.Path, "ip", "-o", "link", "show", "type", "macvlan"); strings.Contains(out, mac) {
		t.Errorf("the link with %s (alias changed) is still in the host namespace after DeleteEndpoint:\n%s", mac, out)
	}
}

// TestDockerHandoffAnnounced: a Docker container's address is announced
// (a gratuitous ARP from its MAC on the wire) once the agent finds its
// link up in the sandbox, as a `mvlan run` container's is: Docker gives
// each container a new MAC, and the address may be in the neighbours'
// caches under the MAC of the container that had it before. About 1 s.
func TestDockerHandoffAnnounced(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a, p := pluginAgent(t, sb)
	netID := strings.Repeat("5d", 32)
	pool := p.staticNetwork(netID, "172.16.90.0/24")
	wire := nstest.NewCapture(t, sb.WirePath, "wire0")
	c1, ep := sb.Netns(t, "c1"), strings.Repeat("c1", 32)
	addr := p.join(netID, pool, ep, c1, c1)
	waitEndpoint(t, a, ep, "ready")
	mac, err := net.ParseMAC(linkMAC(t, c1, "eth0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Wait(3*time.Second, func(f []byte) bool { return isGARP(f, mac, addr.Addr().String()) }); err != nil {
		t.Errorf("no gratuitous ARP for %s from %s on the wire once ready: %v\n%s", addr, mac, err, a.log)
	}
}
