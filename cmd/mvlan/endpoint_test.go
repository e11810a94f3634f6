package main

// Privileged end-to-end tests of endpoints (issue 4): the lifecycle of
// containers (run/rm/connect/disconnect/ps) against a real agent in a netns
// sandbox. The reference document's examples are in reference_test.go; the
// helpers they share are here.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// env is a sandbox with a running agent whose containers are all named
// "<sandbox>-c..." and removed when the test ends, pass or fail.
type env struct {
	t   *testing.T
	sb  *nstest.Sandbox
	a   *agentProc
	seq atomic.Int64
}

// newEnv makes a sandbox (eth0, plus the extra parents given), starts an
// agent in it and registers the cleanup of every container it may make.
func newEnv(t *testing.T, extraParents ...string) *env {
	t.Helper()
	sb := nstest.NewSandbox(t)
	for _, p := range extraParents {
		sb.AddVeth(t, p)
	}
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	e.a.start()
	t.Cleanup(e.cleanup)
	return e
}

// newHeldEnv is newEnv with an agent that holds every background removal
// for hold before it deletes the container's link.
func newHeldEnv(t *testing.T, hold time.Duration, extraParents ...string) *env {
	t.Helper()
	sb := nstest.NewSandbox(t)
	for _, p := range extraParents {
		sb.AddVeth(t, p)
	}
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	e.a.env = []string{"MVLAN_TEST_HOLDPOINT=endpoint-rm:after-down", "MVLAN_TEST_HOLD=" + hold.String()}
	e.a.start()
	t.Cleanup(e.cleanup)
	return e
}

// cleanup removes the containers through the agent (if it still runs),
// then unmounts and removes any /run/netns/<sandbox>-c* left behind.
func (e *env) cleanup() {
	if out, _, code := e.a.mv("ps", "--format", "json"); code == 0 {
		var eps []api.Endpoint
		if json.Unmarshal([]byte(out), &eps) == nil {
			var names []string
			for _, ep := range eps {
				if strings.HasPrefix(ep.Name, e.sb.Name+"-c") {
					names = append(names, ep.Name)
				}
			}
			if len(names) > 0 {
				e.a.mv(append([]string{"rm", "-f"}, names...)...)
			}
		}
	}
	left, _ := filepath.Glob(filepath.Join("/run/netns", e.sb.Name+"-c*"))
	for _, p := range left {
		_ = unix.Unmount(p, unix.MNT_DETACH)
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			e.t.Errorf("cleanup: remove %s: %v", p, err)
		}
	}
	removeEtcNetns(e.t, e.sb.Name+"-c")
}

// removeEtcNetns removes /etc/netns/PREFIX* (a DHCP lease's resolv.conf)
// that an agent killed at the end of a test left.
func removeEtcNetns(t testing.TB, prefix string) {
	left, _ := filepath.Glob(filepath.Join("/etc/netns", prefix+"*"))
	for _, p := range left {
		if err := os.RemoveAll(p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
}

// name returns the container name "<sandbox>-c<suffix>".
func (e *env) name(suffix string) string { return e.sb.Name + "-c" + suffix }

// tmpName returns a fresh container name for transient (--rm) containers.
func (e *env) tmpName() string { return e.name(fmt.Sprintf("t%d", e.seq.Add(1))) }

// ps lists the endpoints (through the API: the BPF keys too).
func (e *env) ps() []api.Endpoint {
	e.t.Helper()
	return e.a.endpoints()
}

// endpoint returns the endpoint named name, if ps lists it.
func (e *env) endpoint(name string) (api.Endpoint, bool) {
	e.t.Helper()
	for _, ep := range e.ps() {
		if ep.Name == name {
			return ep, true
		}
	}
	return api.Endpoint{}, false
}

// runD runs `mvlan run -d --name NAME --net NET FLAGS...` and returns the
// endpoint as ps shows it.
func (e *env) runD(name, net string, flags ...string) api.Endpoint {
	e.t.Helper()
	out := e.a.ok(append([]string{"run", "-d", "--name", name, "--net", net}, flags...)...)
	if strings.TrimSpace(out) != name {
		e.t.Errorf("run -d printed %q, want the name %q", out, name)
	}
	ep, ok := e.endpoint(name)
	if !ok {
		e.t.Fatalf("run -d %s: not in ps", name)
	}
	return ep
}

// in runs a command inside namespace ns (a name or a path) and fails the
// test unless it succeeds.
func (e *env) in(ns string, args ...string) string {
	e.t.Helper()
	return e.sb.Run(e.t, ns, args...)
}

// pingArgs pings dst 4 times, quickly; with fail set, twice (it is expected to fail).
func pingArgs(dst string, fail bool) []string {
	n := "4"
	if fail {
		n = "2"
	}
	args := []string{"ping", "-c", n, "-W", "1", "-i", "0.2", dst}
	if strings.Contains(dst, ":") {
		args = append([]string{"ping", "-6"}, args[1:]...)
	}
	return args
}

// pingRun pings dst from a transient container: `mvlan run --rm --net NET
// FLAGS -- ping ...`. It returns the output and the exit code.
func (e *env) pingRun(net, dst string, fail bool, flags ...string) (string, int) {
	args := append([]string{"run", "--rm", "--name", e.tmpName(), "--net", net}, flags...)
	out, errs, code := e.a.mv(append(append(args, "--"), pingArgs(dst, fail)...)...)
	return out + errs, code
}

// pingFrom pings dst from inside the container's namespace.
func (e *env) pingFrom(ns, dst string, fail bool) (string, error) {
	return nstest.RunErr(ns, pingArgs(dst, fail)...)
}

// wantPingOK fails unless the ping output shows 0% loss and exit 0.
func (e *env) wantPingOK(what, out string, code int) {
	e.t.Helper()
	if code != 0 || !strings.Contains(out, " 0% packet loss") {
		e.t.Errorf("%s: exit %d, want 0 with 0%% packet loss:\n%s\nagent log:\n%s", what, code, out, e.a.log)
	}
}

// wantPingFail fails unless the ping got no answer.
func (e *env) wantPingFail(what, out string, code int) {
	e.t.Helper()
	if code == 0 || !strings.Contains(out, "packets transmitted") || !strings.Contains(out, " 100% packet loss") {
		e.t.Errorf("%s: exit %d; want ping to run and fail with 100%% packet loss:\n%s", what, code, out)
	}
}

// exitOf turns an error of RunErr into an exit code (0, 1, ...).
func exitOf(err error) int {
	if err == nil {
		return 0
	}
	return 1
}

// addrOf returns the endpoint's address of one family ("" if none).
func addrOf(ep api.Endpoint, v6 bool) string {
	for _, p := range ep.Addrs {
		if p.Addr().Is6() == v6 {
			return p.String()
		}
	}
	return ""
}

// netnsExists reports whether /run/netns/name exists.
func netnsExists(name string) bool {
	_, err := os.Lstat(filepath.Join("/run/netns", name))
	return err == nil
}

// mustContain fails unless s contains each of wants.
func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, s)
		}
	}
}

// waitGone polls ps until name is no longer listed (at most d).
func (e *env) waitGone(name string, d time.Duration) bool {
	e.t.Helper()
	for deadline := time.Now().Add(d); ; {
		if _, ok := e.endpoint(name); !ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEndpointRmFreesAddress: rm -f removes the container's namespace (and
// the link in it) and frees its address, which can be requested again at
// once; afterwards network rm succeeds.
func TestEndpointRmFreesAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	c1, c2 := e.name("1"), e.name("2")
	e.runD(c1, "pub_net", "--ip=172.16.86.10")
	if out := e.a.ok("rm", "-f", c1); strings.TrimSpace(out) != c1 {
		t.Errorf("rm -f printed %q, want %q", out, c1)
	}
	if netnsExists(c1) {
		t.Errorf("/run/netns/%s still exists after rm -f", c1)
	}
	if _, ok := e.endpoint(c1); ok {
		t.Errorf("ps still lists %s after rm -f", c1)
	}
	ep := e.runD(c2, "pub_net", "--ip=172.16.86.10")
	if got := addrOf(ep, false); got != "172.16.86.10/24" {
		t.Errorf("re-requested address: got %q, want 172.16.86.10/24", got)
	}
	mustContain(t, "ip addr in "+c2, e.in(c2, "ip", "-4", "-o", "addr", "show", "dev", "eth0"), "172.16.86.10/24")
	e.a.ok("rm", "-f", c2)
	e.a.ok("network", "rm", "pub_net")
	if q := e.a.ok("network", "ls", "-q"); q != "" {
		t.Errorf("network still listed after rm: %q", q)
	}
}

// TestEndpointRmUnreachableAtOnce: rm answers before the container's link
// is deleted (the agent is held there for 2 s by a test hook), and from
// that moment nothing reaches the container, ps no longer lists it and its
// namespace is gone; its address is handed out again only once the link
// is: a run asking for it waits for the deletion, then gets it.
func TestEndpointRmUnreachableAtOnce(t *testing.T) {
	t.Parallel()
	hold := nstest.Slow(2 * time.Second) // long enough for the checks in between
	e := newHeldEnv(t, hold)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	c1, c2, c3 := e.name("1"), e.name("2"), e.name("3")
	e.runD(c1, "pub_net", "--ip=172.16.86.10")
	e.runD(c2, "pub_net", "--ip=172.16.86.11")
	// c2 will hold c1's MAC for 172.16.86.10 when c3 takes the address:
	// c3's gratuitous ARP must replace it even if the entry changed less
	// than locktime (1 s by default) ago.
	e.in(c2, "sysctl", "-q", "-w", "net.ipv4.neigh.eth0.locktime=0")
	out, err := e.pingFrom(c2, "172.16.86.10", false)
	e.wantPingOK("ping c1 before rm", out, exitOf(err))

	t0 := time.Now()
	e.a.ok("rm", "-f", c1)
	if d := time.Since(t0); d >= hold {
		t.Fatalf("rm -f took %v: it waited for the link's deletion (held %v)", d, hold)
	}
	out, err = e.pingFrom(c2, "172.16.86.10", true)
	e.wantPingFail("ping c1 after rm -f answered, its link not deleted yet", out, exitOf(err))
	if _, ok := e.endpoint(c1); ok {
		t.Errorf("ps still lists %s after rm -f answered", c1)
	}
	if netnsExists(c1) {
		t.Errorf("/run/netns/%s still exists after rm -f answered", c1)
	}
	if time.Since(t0) >= hold {
		t.Fatalf("the checks after rm took longer than the hold (%v): they proved nothing", hold)
	}

	ep := e.runD(c3, "pub_net", "--ip=172.16.86.10")
	if d := time.Since(t0); d < hold {
		t.Errorf("%s got 172.16.86.10 %v after rm -f, before the old link's deletion (held %v)", c3, d, hold)
	}
	if got := addrOf(ep, false); got != "172.16.86.10/24" {
		t.Fatalf("run --ip 172.16.86.10 after rm: got %q", got)
	}
	out, err = e.pingFrom(c2, "172.16.86.10", false)
	e.wantPingOK("ping the new container on the old address", out, exitOf(err))
}

// TestEndpointRmThenRunGetsLowest: a run without --ip right after rm -f on
// the same network gets the address the rm frees when it is the lowest
// free one (as Docker's IPAM), though the removed container's link is
// deleted in the background (held 2 s here): the run waits for it.
func TestEndpointRmThenRunGetsLowest(t *testing.T) {
	t.Parallel()
	hold := nstest.Slow(2 * time.Second) // long enough for the checks in between
	e := newHeldEnv(t, hold)
	e.a.ok("network", "create", "--subnet=172.16.87.0/24", "--gateway=172.16.87.1", "-o", "parent=eth0", "pub_net")
	c1, c2, c3 := e.name("1"), e.name("2"), e.name("3")
	if got := addrOf(e.runD(c1, "pub_net"), false); got != "172.16.87.2/24" {
		t.Fatalf("first run -d got %q, want 172.16.87.2/24", got)
	}
	if got := addrOf(e.runD(c2, "pub_net"), false); got != "172.16.87.3/24" {
		t.Fatalf("second run -d got %q, want 172.16.87.3/24", got)
	}
	t0 := time.Now()
	e.a.ok("rm", "-f", c1)
	if d := time.Since(t0); d >= hold {
		t.Fatalf("rm -f took %v: the hold (%v) was over before the run started", d, hold)
	}
	ep := e.runD(c3, "pub_net")
	if d := time.Since(t0); d < hold {
		t.Errorf("run -d answered %v after rm -f, before the old link's deletion (held %v)", d, hold)
	}
	if got := addrOf(ep, false); got != "172.16.87.2/24" {
		t.Fatalf("run -d right after rm -f %s got %q, want the freed lowest 172.16.87.2/24", c1, got)
	}
	mustContain(t, "ip addr in "+c3, e.in(c3, "ip", "-4", "-o", "addr", "show", "dev", "eth0"), "172.16.87.2/24")
	out, err := e.pingFrom(c2, "172.16.87.2", false)
	e.wantPingOK("ping the new container on the freed address", out, exitOf(err))
}

// TestEndpointRmThenRunOtherNet: rm -f c1 on one network, then run -d
// --name c1 on another while the old namespace's deletion is held: the run
// waits for it, and the new c1 keeps its own namespace and pings a
// neighbour.
func TestEndpointRmThenRunOtherNet(t *testing.T) {
	t.Parallel()
	hold := nstest.Slow(2 * time.Second) // long enough for the checks in between
	e := newHeldEnv(t, hold, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.88.0/24", "-o", "parent=eth0", "net_a")
	e.a.ok("network", "create", "--subnet=172.16.89.0/24", "-o", "parent=eth1", "net_b")
	c1, c2 := e.name("1"), e.name("2")
	e.runD(c1, "net_a", "--ip=172.16.88.10")
	e.runD(c2, "net_b", "--ip=172.16.89.20")
	t0 := time.Now()
	e.a.ok("rm", "-f", c1)
	if d := time.Since(t0); d >= hold {
		t.Fatalf("rm -f took %v: the hold (%v) was over before the run started", d, hold)
	}
	if got := addrOf(e.runD(c1, "net_b", "--ip=172.16.89.10"), false); got != "172.16.89.10/24" {
		t.Fatalf("run -d %s on net_b got %q, want 172.16.89.10/24", c1, got)
	}
	if d := time.Since(t0); d < hold {
		t.Errorf("run -d %s answered %v after rm -f, before the old namespace's removal (held %v)", c1, d, hold)
	}
	waitLog(t, e.a, `msg="endpoint removed" name=`+c1, 1)
	mustContain(t, "ip addr in "+c1+" after the removal", e.in(c1, "ip", "-4", "-o", "addr", "show", "dev", "eth0"), "172.16.89.10/24")
	out, err := e.pingFrom(c1, "172.16.89.20", false)
	e.wantPingOK("ping the neighbour on net_b from the new "+c1, out, exitOf(err))
}

// TestEndpointNetworkRmInUse: network rm of a network with endpoints fails
// with exit 1 naming them, and changes nothing.
func TestEndpointNetworkRmInUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	c1, c2 := e.name("1"), e.name("2")
	e.runD(c1, "pub_net", "--ip=172.16.86.10")
	e.runD(c2, "pub_net", "--ip=172.16.86.11")
	_, errs, code := e.a.mv("network", "rm", "pub_net")
	if code != 1 {
		t.Errorf("network rm with endpoints: exit %d, want 1; stderr %q", code, errs)
	}
	mustContain(t, "network rm stderr", errs, "pub_net", c1, c2)
	if !strings.Contains(e.a.ok("network", "ls"), "pub_net") {
		t.Error("pub_net gone after a refused network rm")
	}
	if n := len(e.ps()); n != 2 {
		t.Errorf("ps lists %d endpoints after a refused network rm, want 2", n)
	}
	mustContain(t, "ip addr in "+c1, e.in(c1, "ip", "-4", "-o", "addr", "show", "dev", "eth0"), "172.16.86.10/24")
	out, code := e.pingRun("pub_net", "172.16.86.11", false)
	e.wantPingOK("ping after refused network rm", out, code)
}

// netnsProcess starts `sleep 60` in a network namespace of its own (a
// "real container", killed when t ends) and returns it and the path of
// its namespace, /proc/PID/ns/net.
func netnsProcess(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	proc := exec.Command("unshare", "--net", "sleep", "60")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait() })
	nsp := fmt.Sprintf("/proc/%d/ns/net", proc.Process.Pid)
	for deadline := time.Now().Add(2 * time.Second); ; { // until unshare has exec'd in its own namespace
		self, _ := os.Readlink("/proc/self/ns/net")
		if l, _ := os.Readlink(nsp); l != "" && l != self {
			return proc, nsp
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare --net did not make a namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEndpointNetnsGone: an endpoint whose namespace disappears is released
// within ~2 s while the agent runs, and on its next start otherwise; its
// address can be requested again. Covers mvlan's own namespaces and
// connected ones.
func TestEndpointNetnsGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")

	// A container of mvlan's, deleted with ip netns del while the agent runs.
	c1 := e.name("1")
	e.runD(c1, "pub_net", "--ip=172.16.86.10")
	if out, err := exec2("ip", "netns", "del", c1); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", c1, err, out)
	}
	if !e.waitGone(c1, 2*time.Second) {
		t.Errorf("ps still lists %s 2s after its namespace was deleted\n%s", c1, e.a.log)
	}
	e.runD(e.name("2"), "pub_net", "--ip=172.16.86.10")

	// A connected namespace made by someone else, deleted while the agent runs.
	x := e.sb.Name + "-x1"
	xp := nstest.NewNetns(t, x)
	e.a.ok("connect", "--ip=172.16.86.20", "pub_net", xp)
	if _, ok := e.endpoint(x); !ok {
		t.Fatalf("connect: ps does not list %s", x)
	}
	if out, err := exec2("ip", "netns", "del", x); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", x, err, out)
	}
	if !e.waitGone(x, 2*time.Second) {
		t.Errorf("ps still lists connected %s 2s after its namespace was deleted", x)
	}
	e.runD(e.name("3"), "pub_net", "--ip=172.16.86.20")

	// A "real container": a process in a namespace of its own, connected by
	// /proc/PID/ns/net; it dies, and the endpoint goes with it.
	proc, nsp := netnsProcess(t)
	e.a.ok("connect", "--ip=172.16.86.40", "pub_net", nsp)
	pidName := fmt.Sprintf("pid-%d", proc.Process.Pid)
	if _, ok := e.endpoint(pidName); !ok {
		t.Errorf("connect %s: ps does not list %s: %+v", nsp, pidName, e.ps())
	}
	mustContain(t, "eth0 of the process", e.in(nsp, "ip", "-o", "addr", "show", "dev", "eth0"), "172.16.86.40/24")
	_ = proc.Process.Kill()
	_ = proc.Wait()
	if !e.waitGone(pidName, 2*time.Second) {
		t.Errorf("ps still lists %s 2s after its process died", pidName)
	}
	e.runD(e.name("6"), "pub_net", "--ip=172.16.86.40")

	// ip netns del of a container whose process still runs: the namespace
	// lives on (the process holds it) with eth0 and its address. The agent
	// must not hand that address out again while it is configured there.
	c7 := e.name("7")
	ep7 := e.runD(c7, "pub_net", "--ip=172.16.86.50", "--", "sleep", "30")
	pids := pidsIn(ep7.NetnsInode)
	if len(pids) == 0 {
		t.Fatalf("run -d -- sleep 30: no process in %s", c7)
	}
	t.Cleanup(func() {
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
	})
	if out, err := exec2("ip", "netns", "del", c7); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", c7, err, out)
	}
	// Positive control instead of a sleep: two containers without
	// processes, deleted one after the other after c7, are each released
	// by a sweep; the second one's sweep started after c7 was deleted.
	for _, ctl := range []string{"8", "9"} {
		name := e.name(ctl)
		e.runD(name, "pub_net")
		if out, err := exec2("ip", "netns", "del", name); err != nil {
			t.Fatalf("ip netns del %s: %v\n%s", name, err, out)
		}
		if !e.waitGone(name, 5*time.Second) {
			t.Fatalf("control: %s not released 5s after ip netns del", name)
		}
	}
	_, listed := e.endpoint(c7)
	live, _ := nstest.RunErr(fmt.Sprintf("/proc/%d/ns/net", pids[0]), "ip", "-o", "addr", "show", "dev", "eth0")
	if !listed && strings.Contains(live, "172.16.86.50/") {
		t.Errorf("the agent released %s (172.16.86.50 is free again) while its namespace, held by process %d, still has eth0 with 172.16.86.50:\n%s",
			c7, pids[0], live)
	}

	// Deleted while the agent is stopped: released on start.
	c4 := e.name("4")
	e.runD(c4, "pub_net", "--ip=172.16.86.30")
	e.a.stop()
	if out, err := exec2("ip", "netns", "del", c4); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", c4, err, out)
	}
	e.a.start()
	if _, ok := e.endpoint(c4); ok {
		t.Errorf("after restart ps still lists %s whose namespace was deleted while stopped\n%s", c4, e.a.log)
	}
	e.runD(e.name("5"), "pub_net", "--ip=172.16.86.30")
}

// pidsIn lists the processes whose network namespace has inode ino.
func pidsIn(ino uint64) []int {
	want := fmt.Sprintf("net:[%d]", ino)
	dirs, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil {
			continue
		}
		if l, _ := os.Readlink("/proc/" + d.Name() + "/ns/net"); l == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// exec2 runs a command in the test's own namespace (ip netns del).
func exec2(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

// TestEndpointConnectDisconnect: a namespace made by someone else gets eth0
// with the address and the default route on connect; disconnect removes
// eth0 and frees the address; the namespace stays. A namespace that already
// has a default route (every real container) and a second network in one
// namespace (--ifname) can be connected too.
func TestEndpointConnectDisconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	e.a.ok("network", "create", "--subnet=192.168.60.0/24", "--gateway=192.168.60.1", "-o", "parent=eth1", "net60")
	x := e.sb.Name + "-x1"
	xp := nstest.NewNetns(t, x)
	e.a.ok("connect", "--ip=172.16.86.10", "pub_net", xp)
	mustContain(t, "ip addr in "+x, e.in(xp, "ip", "-o", "addr", "show", "dev", "eth0"), "172.16.86.10/24")
	mustContain(t, "ip route in "+x, e.in(xp, "ip", "route"), "default via 172.16.86.1 dev eth0", "172.16.86.0/24 dev eth0")
	ep, ok := e.endpoint(x)
	if !ok || ep.Network != "pub_net" || addrOf(ep, false) != "172.16.86.10/24" || ep.IfName != "eth0" {
		t.Errorf("ps after connect: %+v (listed %v)", ep, ok)
	}
	c1 := e.name("1")
	e.runD(c1, "pub_net", "--ip=172.16.86.11")
	out, err := e.pingFrom(c1, "172.16.86.10", false)
	e.wantPingOK("ping the connected namespace", out, exitOf(err))

	e.a.ok("disconnect", "pub_net", xp)
	if out, err := nstest.RunErr(xp, "ip", "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 still in %s after disconnect:\n%s", x, out)
	}
	if _, err := os.Stat(xp); err != nil {
		t.Errorf("disconnect removed the namespace %s, which mvlan did not make: %v", xp, err)
	}
	if _, ok := e.endpoint(x); ok {
		t.Errorf("ps still lists %s after disconnect", x)
	}
	e.runD(e.name("2"), "pub_net", "--ip=172.16.86.10")
	_, errs, code := e.a.mv("disconnect", "pub_net", xp)
	if code != 1 || !strings.Contains(errs, xp) {
		t.Errorf("second disconnect: exit %d, stderr %q; want 1 naming %s", code, errs, xp)
	}

	// A namespace that already has a default route, as a real container
	// does (here via a veth of its own): connect works and keeps it.
	y := e.sb.Name + "-x2"
	yp := nstest.NewNetns(t, y)
	for _, c := range [][]string{{"ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"ip", "link", "set", "v0", "up"}, {"ip", "link", "set", "v1", "up"},
		{"ip", "addr", "add", "10.99.0.2/24", "dev", "v0"}, {"ip", "route", "add", "default", "via", "10.99.0.1"}} {
		e.in(yp, c...)
	}
	if _, errs, code := e.a.mv("connect", "--ip=172.16.86.20", "pub_net", yp); code != 0 {
		t.Errorf("connect a namespace that has a default route: exit %d: %s", code, errs)
	} else {
		mustContain(t, "ip addr in "+y, e.in(yp, "ip", "-o", "addr", "show", "dev", "eth0"), "172.16.86.20/24")
		mustContain(t, "ip route in "+y, e.in(yp, "ip", "route"), "172.16.86.0/24 dev eth0", "default via 10.99.0.1 dev v0")
		out, err := e.pingFrom(yp, "172.16.86.11", false)
		e.wantPingOK("ping from the connected namespace with its own default route", out, exitOf(err))
	}

	// A second network in one namespace: eth0 is taken, so it needs
	// --ifname; the failure leaves the first attachment intact and holds
	// nothing.
	z := e.sb.Name + "-x3"
	zp := nstest.NewNetns(t, z)
	e.a.ok("connect", "--ip=172.16.86.30", "pub_net", zp)
	before := len(e.ps())
	_, errs, code = e.a.mv("connect", "--ip=192.168.60.10", "net60", zp)
	if code != 1 || !strings.Contains(errs, "eth0") {
		t.Errorf("connect a second network without --ifname: exit %d, stderr %q; want 1 naming eth0", code, errs)
	}
	mustContain(t, "eth0 after a failed second connect", e.in(zp, "ip", "-o", "addr", "show", "dev", "eth0"), "172.16.86.30/24")
	if n := len(e.ps()); n != before {
		t.Errorf("a failed connect changed ps: %d endpoints, want %d: %+v", n, before, e.ps())
	}
	if _, errs, code := e.a.mv("connect", "--ip=192.168.60.10", "--ifname=eth1", "net60", zp); code != 0 {
		t.Errorf("connect a second network with --ifname=eth1: exit %d: %s", code, errs)
	} else {
		mustContain(t, "eth1 in "+z, e.in(zp, "ip", "-o", "addr", "show", "dev", "eth1"), "192.168.60.10/24")
		e.a.ok("disconnect", "net60", zp)
		if out, err := nstest.RunErr(zp, "ip", "link", "show", "eth1"); err == nil {
			t.Errorf("eth1 still in %s after disconnect net60:\n%s", z, out)
		}
		mustContain(t, "eth0 after disconnect net60", e.in(zp, "ip", "-o", "addr", "show", "dev", "eth0"), "172.16.86.30/24")
	}
	e.runD(e.name("3"), "net60", "--ip=192.168.60.10") // nothing holds it now
}

// TestConnectIPv6IntoRun: a namespace `mvlan run` made for an IPv4
// network, whose links are born without IPv6, gets working IPv6 on the
// link of an IPv6 network connected into it.
func TestConnectIPv6IntoRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.a.ok("network", "create", "--subnet=192.168.61.0/24", "--ipv6", "--subnet=2001:db8:61::/64", "-o", "parent=eth1", "net6")
	c1 := e.name("1")
	e.runD(c1, "pub_net", "--ip=172.16.86.10")
	if got := strings.TrimSpace(e.in(c1, "sysctl", "-n", "net.ipv6.conf.default.disable_ipv6")); got != "1" {
		t.Fatalf("net.ipv6.conf.default.disable_ipv6 = %q in %s; want 1 (links born without IPv6)", got, c1)
	}
	e.a.ok("connect", "--ip6=2001:db8:61::10", "--ifname=eth1", "net6", filepath.Join("/run/netns", c1))
	addrs := e.in(c1, "ip", "-6", "-o", "addr", "show", "dev", "eth1")
	mustContain(t, "IPv6 addresses of eth1 in "+c1, addrs, "2001:db8:61::10/64")
	for _, line := range strings.Split(addrs, "\n") {
		if strings.Contains(line, "2001:db8:61::10/64") && strings.Contains(line, "tentative") {
			t.Errorf("2001:db8:61::10 is tentative in %s:\n%s", c1, addrs)
		}
	}
	out, code := e.pingRun("net6", "2001:db8:61::10", false)
	e.wantPingOK("ping -6 the connected link", out, code)
}

// TestEndpointConcurrentRun: 50 run -d at once all succeed with distinct
// addresses and MACs, each on its eth0.
func TestEndpointConcurrentRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	const n = 50
	var wg sync.WaitGroup
	errs := make([]string, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, stderr, code := e.a.mv("run", "-d", "--name", e.name(fmt.Sprintf("%02d", i)), "--net", "pub_net")
			if code != 0 {
				errs[i] = fmt.Sprintf("run %d: exit %d: %s%s", i, code, out, stderr)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d parallel run -d took %v", n, time.Since(start))
	for _, s := range errs {
		if s != "" {
			t.Error(s)
		}
	}
	eps := e.ps()
	addrs, macs := map[string]string{}, map[string]string{}
	for _, ep := range eps {
		a := addrOf(ep, false)
		if prev, dup := addrs[a]; dup || a == "" {
			t.Errorf("address %q of %s also held by %s", a, ep.Name, prev)
		}
		if prev, dup := macs[ep.MAC]; dup {
			t.Errorf("MAC %s of %s also held by %s", ep.MAC, ep.Name, prev)
		}
		addrs[a], macs[ep.MAC] = ep.Name, ep.Name
	}
	if len(eps) != n || len(addrs) != n || len(macs) != n {
		t.Errorf("ps: %d endpoints, %d distinct addresses, %d distinct MACs; want %d each", len(eps), len(addrs), len(macs), n)
	}
	for _, ep := range eps {
		got := e.in(ep.Name, "ip", "-o", "link", "show", "dev", "eth0") + e.in(ep.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if !strings.Contains(got, ep.MAC) || !strings.Contains(got, addrOf(ep, false)) {
			t.Errorf("%s: eth0 does not carry %s %s:\n%s", ep.Name, ep.MAC, addrOf(ep, false), got)
		}
	}
}

// TestEndpointRunExitAndBadInput: run --rm passes the command's exit code
// through and leaves nothing; each bad input of run fails with a message
// naming the value and leaves nothing.
func TestEndpointRunExitAndBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "eth1")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	holder := e.name("h")
	e.runD(holder, "pub_net", "--ip=172.16.86.10")

	tmp := e.tmpName()
	_, errs, code := e.a.mv("run", "--rm", "--name", tmp, "--net", "pub_net", "--", "sh", "-c", "exit 7")
	if code != 7 {
		t.Errorf("run --rm -- sh -c 'exit 7': exit %d, want 7; stderr %q", code, errs)
	}
	if _, ok := e.endpoint(tmp); ok || netnsExists(tmp) {
		t.Errorf("run --rm left %s (in ps: %v, /run/netns: %v)", tmp, ok, netnsExists(tmp))
	}

	tmp = e.tmpName()
	_, errs, code = e.a.mv("run", "--rm", "--name", tmp, "--net", "pub_net", "--", "/nonexistent/cmd")
	if code == 0 || !strings.Contains(errs, "/nonexistent/cmd") {
		t.Errorf("run --rm of a missing command: exit %d, stderr %q; want non-zero naming it", code, errs)
	}
	if _, ok := e.endpoint(tmp); ok || netnsExists(tmp) {
		t.Errorf("run --rm of a missing command left %s", tmp)
	}

	foreign := e.name("f")
	nstest.NewNetns(t, foreign)
	slash := e.name("s") + "/x"
	tests := []struct {
		name  string
		flags []string
		cname string
		code  int
		want  []string
	}{
		{"ip outside subnet", []string{"--net", "pub_net", "--ip=10.9.9.9"}, e.name("b1"), 1, []string{"10.9.9.9"}},
		{"ip malformed", []string{"--net", "pub_net", "--ip=172.16.86.300"}, e.name("b2"), 1, []string{"172.16.86.300"}},
		{"ip taken", []string{"--net", "pub_net", "--ip=172.16.86.10"}, e.name("b3"), 1, []string{"172.16.86.10", "endpoint " + holder, "pick another address or leave --ip out"}},
		{"ip is the gateway", []string{"--net", "pub_net", "--ip=172.16.86.1"}, e.name("b4"), 1, []string{"172.16.86.1", "gateway"}},
		{"ip6 on v4-only network", []string{"--net", "pub_net", "--ip6=2001:db8::5"}, e.name("b5"), 1, []string{"2001:db8::5"}},
		{"mac multicast", []string{"--net", "pub_net", "--mac=01:00:5e:00:00:01"}, e.name("b6"), 1, []string{"01:00:5e:00:00:01"}},
		{"name with slash", []string{"--net", "pub_net"}, slash, 1, []string{slash}},
		{"missing --net", nil, e.name("b7"), 2, []string{"--net"}},
		{"name in use", []string{"--net", "pub_net"}, holder, 1, []string{holder}},
		{"name of a foreign netns", []string{"--net", "pub_net"}, foreign, 1, []string{foreign}},
		{"unknown network", []string{"--net", "nosuchnet"}, e.name("b8"), 1, []string{"nosuchnet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "-d", "--name", tt.cname}, tt.flags...)
			out, errs, code := e.a.mv(args...)
			if code != tt.code {
				t.Errorf("mvlan %s: exit %d, want %d; stdout %q stderr %q", strings.Join(args, " "), code, tt.code, out, errs)
			}
			mustContain(t, "stderr", errs, tt.want...)
			eps := e.ps()
			if len(eps) != 1 || eps[0].Name != holder {
				t.Errorf("after a failed run, ps lists %d endpoints: %+v", len(eps), eps)
			}
			switch tt.cname {
			case holder, foreign: // must be left as they were
				if !netnsExists(tt.cname) {
					t.Errorf("failed run removed the existing /run/netns/%s", tt.cname)
				}
				if tt.cname == holder {
					mustContain(t, "holder's eth0", e.in(holder, "ip", "-o", "addr", "show", "dev", "eth0"), "172.16.86.10/24")
				}
			default:
				if netnsExists(tt.cname) || netnsExists(e.name("s")) {
					t.Errorf("failed run left /run/netns/%s", tt.cname)
				}
			}
		})
	}
	// The network's parent went away (mvlan did not create it): run fails
	// naming it and leaves nothing behind.
	e.a.ok("network", "create", "--subnet=192.168.60.0/24", "-o", "parent=eth1", "net60")
	e.sb.Run(t, e.sb.Path, "ip", "link", "del", "eth1")
	gone := e.name("g")
	_, errs, code = e.a.mv("run", "-d", "--name", gone, "--net", "net60", "--ip=192.168.60.10")
	if code != 1 || !strings.Contains(errs, "eth1") {
		t.Errorf("run on a network whose parent is gone: exit %d, stderr %q; want 1 naming eth1", code, errs)
	}
	if _, ok := e.endpoint(gone); ok || netnsExists(gone) {
		t.Errorf("failed run left %s (in ps: %v, /run/netns: %v)", gone, ok, netnsExists(gone))
	}
	if eps := e.ps(); len(eps) != 1 {
		t.Errorf("after a failed run on net60, ps lists %d endpoints, want 1: %+v", len(eps), eps)
	}
	if _, errs, code := e.a.mv("network", "rm", "net60"); code != 0 {
		t.Errorf("network rm net60 after the failed run: exit %d: %s", code, errs)
	}

	// Nothing a failed run reserved is held: a free address can be requested.
	if ep := e.runD(e.name("ok"), "pub_net", "--ip=172.16.86.11"); addrOf(ep, false) != "172.16.86.11/24" {
		t.Errorf("after bad inputs, --ip=172.16.86.11 gave %v", ep.Addrs)
	}
}

// TestEndpointRestart: containers survive an agent restart (ps, pings); an
// eth0 deleted inside a container while the agent is stopped is re-attached
// with its address on start.
func TestEndpointRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	names := []string{e.name("1"), e.name("2"), e.name("3")}
	macs := map[string]string{}
	for i, n := range names {
		macs[n] = e.runD(n, "pub_net", fmt.Sprintf("--ip=172.16.86.%d", 10+i)).MAC
	}
	e.a.stop()
	e.a.start()
	for i, n := range names {
		ep, ok := e.endpoint(n)
		if !ok || addrOf(ep, false) != fmt.Sprintf("172.16.86.%d/24", 10+i) || ep.MAC != macs[n] {
			t.Errorf("after restart: %s listed=%v %+v", n, ok, ep)
		}
	}
	out, err := e.pingFrom(names[0], "172.16.86.11", false)
	e.wantPingOK("ping after restart", out, exitOf(err))

	e.a.stop()
	e.in(names[2], "ip", "link", "del", "eth0")
	e.a.start()
	got := e.in(names[2], "ip", "-o", "addr", "show", "dev", "eth0") + e.in(names[2], "ip", "-o", "link", "show", "dev", "eth0")
	mustContain(t, "eth0 of "+names[2]+" after restart", got, "172.16.86.12/24", macs[names[2]])
	mustContain(t, "ip route in "+names[2], e.in(names[2], "ip", "route"), "default via 172.16.86.1 dev eth0")
	out, err = e.pingFrom(names[0], "172.16.86.12", false)
	e.wantPingOK("ping the re-attached container", out, exitOf(err))
	if _, ok := e.endpoint(names[2]); !ok {
		t.Errorf("ps lost %s", names[2])
	}
}

// TestEndpointLinkFailsAfterName: the kernel refuses to bring the
// container's link up (a foreign macvlan on the parent has the MAC it
// asks for) after its namespace was named: the agent is held before the
// link for 300 ms, and the name is seen meanwhile. run fails naming the
// MAC, and nothing is left: no namespace, no endpoint, no link holding
// the MAC (a run with that MAC and name works once the foreign link is
// gone), and the address is handed out again.
func TestEndpointLinkFailsAfterName(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	e := &env{t: t, sb: sb, a: newAgent(t, sb)}
	e.a.env = []string{"MVLAN_TEST_HOLDPOINT=endpoint-create:before-link", "MVLAN_TEST_HOLD=300ms"}
	e.a.start()
	t.Cleanup(e.cleanup)
	const mac = "02:42:ac:10:56:99"
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "foreign", "address", mac, "type", "macvlan", "mode", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", "foreign", "up")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "--gateway=172.16.86.1", "-o", "parent=eth0", "pub_net")
	c1 := e.name("1")
	type result struct {
		errOut string
		code   int
	}
	done := make(chan result, 1)
	go func() {
		_, errOut, code := e.a.mv("run", "-d", "--network", "pub_net", "--name", c1, "--mac", mac, "busybox")
		done <- result{errOut, code}
	}()
	named := false
	var r result
	for waiting := true; waiting; {
		select {
		case r = <-done:
			waiting = false
		case <-time.After(10 * time.Millisecond):
			named = named || netnsExists(c1)
		}
	}
	if r.code == 0 {
		t.Fatalf("run with the MAC of a foreign link on the parent succeeded")
	}
	if !named {
		t.Fatalf("/run/netns/%s was never seen during the run: the link did not fail after the name", c1)
	}
	mustContain(t, "run's error", r.errOut, "MAC address "+mac+" is in use by another link on eth0")
	if netnsExists(c1) {
		t.Errorf("/run/netns/%s exists after the failed run", c1)
	}
	if _, ok := e.endpoint(c1); ok {
		t.Errorf("ps lists %s after the failed run", c1)
	}
	sb.Run(t, sb.Path, "ip", "link", "del", "foreign")
	ep := e.runD(c1, "pub_net", "--mac", mac)
	if got := addrOf(ep, false); got != "172.16.86.2/24" {
		t.Errorf("the run after got %q, want the address the failed run had: 172.16.86.2/24", got)
	}
}
