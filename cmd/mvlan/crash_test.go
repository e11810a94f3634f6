package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/doctor"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// drift runs `mvlan doctor` and returns the agent's drift problems.
func drift(t *testing.T, a *agentProc) []string {
	t.Helper()
	var problems []string
	for _, c := range driftChecks(t, a) {
		problems = append(problems, c.Detail)
	}
	return problems
}

// driftChecks are the failed checks of mvlan doctor's agent section.
func driftChecks(t *testing.T, a *agentProc) []doctor.Check {
	t.Helper()
	var out struct { // mvlan doctor --format json
		Sections []struct {
			Name   string
			Checks []doctor.Check
		}
	}
	if err := json.Unmarshal([]byte(a.ok("doctor", "--format", "json")), &out); err != nil {
		t.Fatal(err)
	}
	var problems []doctor.Check
	for _, s := range out.Sections {
		for _, c := range s.Checks {
			if s.Name == "agent" && !c.OK {
				problems = append(problems, c)
			}
		}
	}
	return problems
}

// assertConsistent: no drift, and the containers' namespaces on disk are
// exactly the ones mvlan lists. It returns the names mvlan ps lists.
func assertConsistent(t *testing.T, a *agentProc, prefix string) []string {
	t.Helper()
	if d := drift(t, a); len(d) > 0 {
		t.Fatalf("drift after restart:\n%s\nagent log:\n%s", strings.Join(d, "\n"), a.log)
	}
	var eps []api.Endpoint
	if err := json.Unmarshal([]byte(a.ok("ps", "--format", "json")), &eps); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range eps {
		listed = append(listed, e.Name)
	}
	onDisk, _ := filepath.Glob("/run/netns/" + prefix + "*")
	for i := range onDisk {
		onDisk[i] = filepath.Base(onDisk[i])
	}
	slices.Sort(listed)
	slices.Sort(onDisk)
	if !slices.Equal(listed, onDisk) {
		t.Fatalf("mvlan ps lists %v but /run/netns has %v\n%s", listed, onDisk, a.log)
	}
	assertNoTempLinks(t, a, prefix)
	return listed
}

// assertNoTempLinks fails on a link with the agent's temporary prefix (a
// link a crash caught half made) in the host namespace or in any namespace
// of the sandbox (containers' and others'), and on an endpoint's link left
// in the host namespace.
func assertNoTempLinks(t *testing.T, a *agentProc, prefix string) {
	t.Helper()
	tmp := link.TempPrefixFor(agentID(t, a))
	for name, alias := range links(t, a.sb) {
		if strings.HasPrefix(name, tmp) || strings.Contains(alias, "/ep/") {
			t.Fatalf("leaked link %s (%s) in the host namespace", name, alias)
		}
	}
	paths, _ := filepath.Glob("/run/netns/" + a.sb.Name + "-*")
	for _, p := range paths {
		for _, l := range nsLinks(t, p) {
			if strings.HasPrefix(l, tmp) {
				t.Fatalf("leaked half-made link %s (prefix %s) in %s", l, tmp, p)
			}
		}
	}
}

// agentID asks the running agent for its ID.
func agentID(t *testing.T, a *agentProc) string {
	t.Helper()
	var ping struct {
		AgentID string `json:"agent_id"`
	}
	c := api.NewClient(a.socket)
	defer c.Close()
	if err := c.Do(t.Context(), "GET", "/v1/ping", nil, &ping); err != nil || ping.AgentID == "" {
		t.Fatalf("GET /v1/ping: %+v, %v", ping, err)
	}
	return ping.AgentID
}

// nsLinks lists the link names in the namespace at path (with iproute2).
func nsLinks(t *testing.T, path string) []string {
	t.Helper()
	out, err := nstest.RunErr(path, "ip", "-o", "link", "show")
	if err != nil {
		return nil // deleted meanwhile
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			names = append(names, name)
		}
	}
	return names
}

// newContainersAgent is a sandbox and an agent in it, not started, and
// the prefix of the container names the test uses (their namespaces are
// deleted at its end).
func newContainersAgent(t *testing.T) (*nstest.Sandbox, string, *agentProc) {
	t.Helper()
	sb := nstest.NewSandbox(t)
	prefix := sb.Name + "-c"
	cleanupContainers(t, prefix)
	return sb, prefix, newAgent(t, sb)
}

func cleanupContainers(t testing.TB, prefix string) {
	t.Cleanup(func() {
		paths, _ := filepath.Glob("/run/netns/" + prefix + "*")
		for _, p := range paths {
			if err := link.DeleteNetns(filepath.Base(p)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		removeEtcNetns(t, prefix)
	})
}

// TestEndpointCrashPoints kills the agent between each step of attach and
// detach (endpoint-rm:after-down is after rm answered, before the link is
// deleted in the background); after a restart state, links and IPAM agree.
func TestEndpointCrashPoints(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"endpoint-create:after-state", "endpoint-create:after-netns",
		"endpoint-create:after-link", "endpoint-rm:after-state", "endpoint-rm:after-down"} {
		t.Run(point, func(t *testing.T) {
			_, prefix, a := newContainersAgent(t)
			a.start()
			a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
			a.ok("run", "-d", "--name", prefix+"1", "--net", "pub_net", "--ip", "172.16.86.10")
			a.stop()
			a.start("MVLAN_TEST_CRASHPOINT=" + point)
			if strings.HasPrefix(point, "endpoint-rm") {
				a.mv("rm", "-f", prefix+"1")
			} else {
				a.mv("run", "-d", "--name", prefix+"2", "--net", "pub_net", "--ip", "172.16.86.11")
			}
			a.waitExit()
			a.start()
			assertConsistent(t, a, prefix)
			if strings.HasPrefix(point, "endpoint-rm") {
				// The removal was finished on start: the container and
				// its address are free.
				a.ok("run", "-d", "--name", prefix+"1", "--net", "pub_net", "--ip", "172.16.86.10")
			}
			// Whatever survived works, and the addresses are usable again.
			a.mv("rm", "-f", prefix+"1", prefix+"2")
			a.ok("run", "-d", "--name", prefix+"3", "--net", "pub_net", "--ip", "172.16.86.11")
			a.ok("rm", "-f", prefix+"3")
			a.ok("network", "rm", "pub_net")
		})
	}
}

// TestCrashBeforeRecord: run -d is killed after its container's link is
// made but before its record reached the disk (the commit is held). The
// namespace had no name yet: nothing of the container is left after the
// restart, its name and address are free, and the datapath has no entry
// for it.
func TestCrashBeforeRecord(t *testing.T) {
	_, prefix, a := newContainersAgent(t)
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	a.ok("run", "-d", "--name", prefix+"1", "--net", "pub_net", "--ip", "172.16.86.10")
	a.stop()
	a.start("MVLAN_TEST_HOLDPOINT=endpoint-create:before-state", "MVLAN_TEST_HOLD=30s",
		"MVLAN_TEST_CRASHPOINT=endpoint-create:after-link")
	a.mv("run", "-d", "--name", prefix+"2", "--net", "pub_net", "--ip", "172.16.86.11")
	a.waitExit()
	if netnsExists(prefix + "2") {
		t.Fatalf("/run/netns/%s exists after a crash before its record", prefix+"2")
	}
	a.start()
	assertConsistent(t, a, prefix)
	a.ok("run", "-d", "--name", prefix+"2", "--net", "pub_net", "--ip", "172.16.86.11")
	a.ok("rm", "-f", prefix+"1", prefix+"2")
	a.ok("network", "rm", "pub_net")
}

// TestCrashLeavesForeignNamespace: run -d --name c2 is killed as its
// record reaches the disk, before its namespace has its name, and someone
// else then makes /run/netns/c2 (ip netns add). The start undoes c2 and
// leaves their namespace alone: a namespace mounted at the path is not
// the empty file that a crash while naming one leaves.
func TestCrashLeavesForeignNamespace(t *testing.T) {
	_, prefix, a := newContainersAgent(t)
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	a.stop()
	a.start("MVLAN_TEST_CRASHPOINT=endpoint-create:after-state")
	a.mv("run", "-d", "--name", prefix+"2", "--net", "pub_net", "--ip", "172.16.86.11")
	a.waitExit()
	theirs := nstest.NewNetns(t, prefix+"2")
	ino, err := link.CheckNetns(theirs)
	if err != nil {
		t.Fatal(err)
	}
	a.start()
	if got, err := link.CheckNetns(theirs); err != nil || got != ino {
		t.Fatalf("after the start, %s is %d, %v; want their namespace %d left alone\nagent log:\n%s", theirs, got, err, ino, a.log.String())
	}
	if d := drift(t, a); len(d) > 0 {
		t.Errorf("drift after the start:\n%s", strings.Join(d, "\n"))
	}
	if eps := a.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after the start: %+v; want none (the attach was undone)", eps)
	}
	assertNoTempLinks(t, a, prefix)
	a.ok("run", "-d", "--name", prefix+"3", "--net", "pub_net", "--ip", "172.16.86.11") // the address is free
	a.ok("rm", "-f", prefix+"3")
	a.ok("network", "rm", "pub_net")
}

// TestAnnouncedOnceRecorded: while a container's record waits for the
// disk (the commit held 2 s), nothing announces its address on the wire
// (a crash then would leave the wire knowing a container that never
// was); once run has answered, the wire hears it.
func TestAnnouncedOnceRecorded(t *testing.T) {
	t.Parallel()
	sb, prefix, a := newContainersAgent(t)
	announcedOnceRecorded(t, sb, a, "02:42:ac:10:56:0b", "172.16.86.11",
		[]string{"run", "-d", "--name", prefix + "1", "--net", "pub_net"}, nil, []string{"rm", "-f", prefix + "1"})
}

// TestConnectAnnouncedOnceRecorded: the same for a namespace of someone
// else's (connect), whose link is made while its record commits.
func TestConnectAnnouncedOnceRecorded(t *testing.T) {
	t.Parallel()
	sb, _, a := newContainersAgent(t)
	ns := sb.Netns(t, "x")
	announcedOnceRecorded(t, sb, a, "02:42:ac:10:56:0c", "172.16.86.12",
		[]string{"connect"}, []string{"pub_net", ns}, []string{"disconnect", "pub_net", ns})
}

// announcedOnceRecorded attaches with cmd --ip ip --mac mac args while the
// agent holds its commits 2 s, and checks that the wire hears the
// endpoint's gratuitous ARP only once the attach has answered; detach
// ends it.
func announcedOnceRecorded(t *testing.T, sb *nstest.Sandbox, a *agentProc, macStr, ip string, cmd, args, detach []string) {
	t.Helper()
	a.start("MVLAN_TEST_HOLDPOINT=endpoint-create:before-state", "MVLAN_TEST_HOLD=2s")
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	mac, _ := net.ParseMAC(macStr)
	garp := func(f []byte) bool { return isGARP(f, mac, ip) }
	capture := nstest.NewCapture(t, sb.WirePath, "wire0")
	done := make(chan string, 1)
	go func() {
		done <- a.ok(slices.Concat(cmd, []string{"--ip", ip, "--mac", mac.String()}, args)...)
	}()
	if f, err := capture.Wait(1500*time.Millisecond, garp); err == nil {
		t.Errorf("the wire heard %x before the endpoint's record was on disk", f)
	}
	<-done
	if _, err := capture.Wait(3*time.Second, garp); err != nil {
		t.Errorf("no gratuitous ARP on the wire after %s answered: %v", cmd[0], err)
	}
	a.ok(detach...)
}

// TestCrashHalfMadeLink: connect into a namespace of someone else's is
// killed after the endpoint is stored (the link, made while the record
// commits, is held back until then: crashBeforeLink), and the test leaves
// what a kill inside the link's creation leaves there: the endpoint's macvlan under
// its final name with its MAC, down, in the group it is born in, but
// without its mark; or a link under the agent's temporary prefix (a
// passthru endpoint's). On start the agent removes those, and only
// those: the namespace and its other links stay (another macvlan with
// another MAC, and one of the namespace's own with the endpoint's MAC
// and name pattern but in group 0).
func TestCrashHalfMadeLink(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	prefix := sb.Name + "-c"
	ns := sb.Netns(t, "x")
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	half := link.TempPrefixFor(agentID(t, a)) + "0bad"
	const mac = "02:42:ac:10:56:14"
	a.stop()
	a.start(crashBeforeLink...)
	a.mv("connect", "--ip=172.16.86.20", "--mac="+mac, "--ifname=eth1", "pub_net", ns)
	a.waitExit()
	sb.Run(t, ns, "ip", "link", "add", half, "type", "bridge")
	sb.Run(t, ns, "ip", "link", "add", "keep0", "type", "bridge")
	sb.Run(t, ns, "ip", "link", "add", "eth1", "link", "keep0", "address", mac, "group", "1836477538", "type", "macvlan")
	sb.Run(t, ns, "ip", "link", "add", "eth2", "link", "keep0", "address", "02:42:ac:10:56:15", "group", "1836477538", "type", "macvlan")
	a.start()
	got := nsLinks(t, ns)
	if slices.Contains(got, half) || slices.Contains(got, "eth1") || !slices.Contains(got, "keep0") || !slices.Contains(got, "eth2") {
		t.Fatalf("links in %s after restart: %v; want %s and eth1 removed, keep0 and eth2 kept\n%s", ns, got, half, a.log)
	}
	// The namespace's own eth1, with that MAC (group 0): a connect that
	// fails on the name, and a crash after its record, leave it.
	sb.Run(t, ns, "ip", "link", "add", "eth1", "link", "keep0", "address", mac, "type", "macvlan")
	if _, stderr, code := a.mv("connect", "--ip=172.16.86.21", "--mac="+mac, "--ifname=eth1", "pub_net", ns); code == 0 || !strings.Contains(stderr, "eth1") {
		t.Errorf("connect with --ifname eth1 taken: exit %d, %q; want a failure naming eth1", code, stderr)
	}
	a.stop()
	a.start(crashBeforeLink...)
	a.mv("connect", "--ip=172.16.86.21", "--mac="+mac, "--ifname=eth1", "pub_net", ns)
	a.waitExit()
	a.start()
	if got := nsLinks(t, ns); !slices.Contains(got, "eth1") {
		t.Fatalf("links in %s: %v; the namespace's own eth1 is gone\n%s", ns, got, a.log)
	}
	sb.Run(t, ns, "ip", "link", "del", "eth1")
	assertConsistent(t, a, prefix)
	a.ok("connect", "--ip=172.16.86.20", "--ifname=eth1", "pub_net", ns) // the address is free again
	a.ok("disconnect", "pub_net", ns)
}

// crashBeforeLink kills the agent once an attach's record is stored and
// before its link is made: the link waits at its hold point while the
// record commits alongside (engine.CreateEndpoint), and the commit's
// crash point kills.
var crashBeforeLink = []string{"MVLAN_TEST_CRASHPOINT=endpoint-create:after-state",
	"MVLAN_TEST_HOLDPOINT=endpoint-create:before-link", "MVLAN_TEST_HOLD=30s"}

// crashSeed is MVLAN_TEST_SEED when set (to replay a run), else the time;
// it is logged either way.
func crashSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MVLAN_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MVLAN_TEST_SEED=%q: want a decimal uint64", s)
		}
		seed = v
	}
	t.Logf("random seed %d (replay with MVLAN_TEST_SEED=%d)", seed, seed)
	return seed
}

// TestCrashStream SIGKILLs the agent at random moments during a stream of
// run and rm, each after the round's first run succeeded; after each
// restart state, links and IPAM agree exactly, and after at least one
// restart mvlan ps lists endpoints that survived it (the check is not
// made on empty state only).
func TestCrashStream(t *testing.T) {
	t.Parallel()
	_, prefix, a := newContainersAgent(t)
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	seed := crashSeed(t)
	kills := rand.New(rand.NewPCG(1, seed)) // when to kill
	names := rand.New(rand.NewPCG(2, seed)) // which name, used by the stream only
	survived := 0                           // rounds after whose restart ps listed endpoints
	for round := range 5 {
		stop := make(chan struct{})
		done := make(chan struct{})
		var runs, failed atomic.Int64 // run -d that exited 0, and not
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("%s%d", prefix, names.IntN(6))
				if _, _, code := a.mv("run", "-d", "--name", name, "--net", "pub_net"); code != 0 {
					failed.Add(1)
					a.mv("rm", "-f", name)
				} else {
					runs.Add(1)
				}
			}
		}()
		if !waitFor(10*time.Second, func() bool { return runs.Load() > 0 }) {
			close(stop)
			<-done
			t.Fatalf("round %d: no run -d succeeded in 10 s (%d failed): the stream did nothing to crash\n%s", round, failed.Load(), a.log)
		}
		time.Sleep(time.Duration(50+kills.IntN(250)) * time.Millisecond)
		a.kill()
		close(stop)
		<-done
		a.start()
		listed := assertConsistent(t, a, prefix)
		t.Logf("round %d: restarted after %d runs (%d failed); ps lists %d", round, runs.Load(), failed.Load(), len(listed))
		if len(listed) > 0 {
			survived++
		}
	}
	if survived == 0 {
		t.Fatalf("mvlan ps was empty after every restart: the consistency checks compared nothing")
	}
}

// TestRemakeFindsHalfMadeLink: a start that makes a ready endpoint's
// lost link again and is killed inside that leaves what a kill inside any
// link's creation leaves (the link under its final name with its MAC,
// down, in the group it is born in, no mark); the next start removes it
// and makes the link whole, instead of failing on its name for good.
func TestRemakeFindsHalfMadeLink(t *testing.T) {
	sb := nstest.NewSandbox(t)
	ns := sb.Netns(t, "x")
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	const mac = "02:42:ac:10:56:16"
	a.ok("connect", "--ip=172.16.86.22", "--mac="+mac, "pub_net", ns)
	a.stop()
	sb.Run(t, ns, "ip", "link", "del", "eth0")
	sb.Run(t, sb.Path, "ip", "link", "add", "link", "eth0", "name", "mvhalf0", "netns", filepath.Base(ns),
		"address", mac, "group", "1836477538", "type", "macvlan", "mode", "bridge")
	sb.Run(t, ns, "ip", "link", "set", "mvhalf0", "name", "eth0")
	a.start()
	out := sb.Run(t, ns, "ip", "-d", "addr", "show", "dev", "eth0")
	if !strings.Contains(out, "172.16.86.22/24") || !strings.Contains(out, "state UP") && !strings.Contains(out, ",UP") || !strings.Contains(out, "alias mvlan/") {
		t.Fatalf("eth0 in %s after the start is not the endpoint's link, whole:\n%s\n%s", ns, out, a.log)
	}
	a.ok("disconnect", "pub_net", ns)
}

// TestDoctorSocketAfter: mvlan doctor --socket S (the flag after doctor,
// as mvlan's flags may be) checks the agent on S, as mvlan --socket S
// doctor does (it was a usage error), and that one still beats
// MVLAN_SOCKET.
func TestDoctorSocketAfter(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	out, errs, code := runCmd(60*time.Second, mvlanBin, "doctor", "--format", "json", "--socket", a.socket)
	if code != 0 {
		t.Fatalf("mvlan doctor --socket S: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "state, kernel links and IPAM agree") {
		t.Errorf("mvlan doctor --socket S did not check the agent on S:\n%s", out)
	}
	// The flag before doctor beats MVLAN_SOCKET, as before doctor took one.
	out, errs, code = runCmd(60*time.Second, "env", "MVLAN_SOCKET=/run/mvt-no-such.sock", mvlanBin, "--socket", a.socket, "doctor", "--format", "json")
	if code != 0 || !strings.Contains(out, "state, kernel links and IPAM agree") {
		t.Errorf("MVLAN_SOCKET=other mvlan --socket S doctor: exit %d, did not check the agent on S:\n%s%s", code, out, errs)
	}
}

// TestDoctorDuringAttach: mvlan doctor while an attach is under way (held
// just before its record is written) reports no drift: the attach shows
// as drift in one look (served but not stored, an address held by no
// stored endpoint) and is done by the next, a second later.
func TestDoctorDuringAttach(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.env = []string{"MVLAN_TEST_HOLDPOINT=endpoint-create:before-state", "MVLAN_TEST_HOLD=600ms"}
	a.start()
	a.ok("network", "create", "--subnet=172.16.92.0/24", "-o", "parent=eth0", "pub_net")
	done := make(chan int, 1)
	go func() {
		_, _, code := a.mv("run", "-d", "--name", sb.Name+"-c1", "--net", "pub_net")
		done <- code
	}()
	if !waitFor(5*time.Second, func() bool { return len(a.endpoints()) == 1 }) {
		t.Fatalf("the attach was not admitted within 5 s\n%s", a.log)
	}
	d := drift(t, a)
	if code := <-done; code != 0 {
		t.Fatalf("the attach failed: exit %d\n%s", code, a.log)
	}
	if len(d) > 0 {
		t.Errorf("doctor during an attach reported drift: %q", d)
	}
}
