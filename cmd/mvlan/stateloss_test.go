package main

// Privileged end-to-end tests of the state file's integrity (issue 11): a
// corrupt state file is refused while containers run on it, and
// `mvlan agent --recover` brings them back; a restart adopts an endpoint
// caught "creating" whose kernel side is complete.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nsfile"
	"github.com/mvlan/mvlan/internal/nstest"
)

// TestAdoptCompleteCreating: the agent dies after an endpoint's link is
// made (programs, addresses, routes, up) and its namespace named, but
// before its "ready" record; on start the endpoint is adopted, not torn
// down: listed ready, its programs attached, and it pings. One whose
// default route is missing is not complete and is released. (A kill
// before the namespace is named leaves nothing: TestCrashBeforeRecord.)
func TestAdoptCompleteCreating(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.runD(e.name("1"), "pub_net", "--ip", "172.16.86.10")
	e.a.stop()
	e.a.start("MVLAN_TEST_CRASHPOINT=endpoint-create:after-netns")
	e.a.mv("run", "-d", "--name", e.name("2"), "--net", "pub_net", "--ip", "172.16.86.11")
	e.a.waitExit()
	e.a.start()
	c2, ok := e.endpoint(e.name("2"))
	if !ok || c2.State != api.EndpointReady || !slices.Equal(c2.Addrs, []netip.Prefix{netip.MustParsePrefix("172.16.86.11/24")}) || c2.Ifindex == 0 {
		t.Fatalf("after restart: %+v (listed %v); want c2 ready with 172.16.86.11/24 and its programs' keys\n%s", c2, ok, e.a.log)
	}
	if !strings.Contains(e.a.log.String(), "adopted endpoint") {
		t.Errorf("the log does not say the endpoint was adopted:\n%s", e.a.log)
	}
	out, err := e.pingFrom(netnsPath(e.name("2")), "172.16.86.10", false)
	e.wantPingOK("c2 -> c1 after adoption", out, exitCode(err))
	assertConsistent(t, e.a, e.name(""))

	// The same crash, but the link's set-up lacks its last step (the
	// default route): not complete, so released as before.
	e.a.stop()
	e.a.start("MVLAN_TEST_CRASHPOINT=endpoint-create:after-netns")
	e.a.mv("run", "-d", "--name", e.name("3"), "--net", "pub_net", "--ip", "172.16.86.12")
	e.a.waitExit()
	e.in(netnsPath(e.name("3")), "ip", "route", "del", "default")
	e.a.start()
	if c3, ok := e.endpoint(e.name("3")); ok {
		t.Fatalf("c3 without its default route was adopted: %+v\n%s", c3, e.a.log)
	}
	assertConsistent(t, e.a, e.name(""))
}

func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

// TestCorruptStateRecover: with two containers running (one made after the
// last snapshot), the agent is killed and its state file damaged. Start is
// refused, naming the problem and the recovery command, and the containers
// keep working; `agent --recover` brings both back with their addresses
// (not those the containers added to their links meanwhile, the gateway's
// among them), and the next container gets an address of its own.
func TestCorruptStateRecover(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		damage  func(t *testing.T, path string)
		problem string
	}{
		{"empty", func(t *testing.T, path string) { truncate(t, path, 0) }, "(empty)"},
		{"truncated", func(t *testing.T, path string) { truncate(t, path, fileSize(t, path)/2) }, "(truncated)"},
		{"newest meta garbled", garbleNewestMeta, "(bad meta page)"},
		{"root page garbled", garbleRootPage, "(inconsistent)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
			c1 := e.runD(e.name("1"), "pub_net")
			e.a.stop() // a clean stop: the snapshot holds c1
			e.a.start()
			c2 := e.runD(e.name("2"), "pub_net") // not in the snapshot yet (10 s)
			e.a.kill()
			if got := snapshotEndpoints(t, e.a.stateDir()); !slices.Equal(got, []string{c1.Name}) {
				t.Fatalf("the snapshot holds %v, want only %s (c2 must come from the kernel)", got, c1.Name)
			}
			// Addresses the containers add to their links are not theirs to
			// recover: one outside the subnet on c1 (in the snapshot), the
			// gateway on c2 (not).
			e.in(netnsPath(c1.Name), "ip", "addr", "add", "203.0.113.7/32", "dev", "eth0")
			e.in(netnsPath(c2.Name), "ip", "addr", "add", "172.16.86.1/32", "dev", "eth0")
			tc.damage(t, filepath.Join(e.a.stateDir(), store.FileName))

			log, code := e.a.runToExit()
			if code == 0 || !strings.Contains(log, tc.problem) || !strings.Contains(log, "mvlan agent --recover") {
				t.Fatalf("start on a damaged state: exit %d, want a refusal naming %s and `mvlan agent --recover`:\n%s", code, tc.problem, log)
			}
			c1IP := c1.Addrs[0].Addr().String()
			out, err := e.pingFrom(netnsPath(c2.Name), c1IP, false)
			e.wantPingOK("c2 -> c1 while the agent refuses to start", out, exitCode(err))

			e.a.flags = []string{"--recover"}
			e.a.start()
			e.a.flags = nil
			for _, want := range []api.Endpoint{c1, c2} {
				got, ok := e.endpoint(want.Name)
				if !ok || got.State != api.EndpointReady || !slices.Equal(got.Addrs, want.Addrs) || got.MAC != want.MAC {
					t.Fatalf("after --recover: %s is %+v (listed %v), want ready with %v %s\n%s", want.Name, got, ok, want.Addrs, want.MAC, e.a.log)
				}
			}
			out, err = e.pingFrom(netnsPath(c2.Name), c1IP, false)
			e.wantPingOK("c2 -> c1 after --recover", out, exitCode(err))
			c3 := e.runD(e.name("3"), "pub_net")
			for _, o := range []api.Endpoint{c1, c2} {
				if c3.Addrs[0] == o.Addrs[0] {
					t.Fatalf("c3 got %v, the address of %s", c3.Addrs[0], o.Name)
				}
			}
			if bad, _ := filepath.Glob(filepath.Join(e.a.stateDir(), store.FileName+".bad-*")); len(bad) != 1 {
				t.Errorf("bad file kept aside: %v, want one", bad)
			}
			e.a.stop()
			e.a.start()
			assertConsistent(t, e.a, e.name(""))
		})
	}
}

// runToExit runs the agent and waits (up to 20 s) for it to exit on its
// own; it returns its log and exit code.
func (a *agentProc) runToExit() (string, int) {
	a.t.Helper()
	cmd := a.command()
	if err := cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		a.t.Fatalf("the agent did not exit on its own\n%s", a.log)
	}
	return a.log.String(), cmd.ProcessState.ExitCode()
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// bbolt's layout, as far as the damage below needs it: 4 KiB pages (this
// machine's page size); pages 0 and 1 are meta pages, the one with the
// higher transaction ID (at offset 64) is in force; its root page ID is at
// offset 32; every page starts with a 16-byte header.
const boltPage = 4096

// newestMeta opens the bbolt file at path and returns it with the offset
// of its newest meta page.
func newestMeta(t *testing.T, path string) (*os.File, int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if tx0, tx1 := readU64(t, f, 64), readU64(t, f, boltPage+64); tx1 > tx0 {
		return f, boltPage
	}
	return f, 0
}

func readU64(t *testing.T, f *os.File, off int64) uint64 {
	t.Helper()
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b)
}

// garbleNewestMeta overwrites the meta in force (bbolt alone would fall
// back to the previous transaction).
func garbleNewestMeta(t *testing.T, path string) {
	f, meta := newestMeta(t, path)
	if _, err := f.WriteAt([]byte(strings.Repeat("\x5a", 64)), meta+16); err != nil {
		t.Fatal(err)
	}
}

// garbleRootPage overwrites the header of the root bucket's page.
func garbleRootPage(t *testing.T, path string) {
	f, meta := newestMeta(t, path)
	root := int64(readU64(t, f, meta+32))
	if _, err := f.WriteAt([]byte(strings.Repeat("\x5a", 16)), root*boltPage); err != nil {
		t.Fatal(err)
	}
}

// TestBadRecordQuarantined: one network's record is garbage in the state
// file (the store quarantines it and its containers), one container's
// record has a state the engine does not know and another's holds the
// gateway's address (the engine quarantines both). The agent starts; the
// other containers work; the bad network's parent link and its
// containers' links are left in place (they keep working), and no new
// container gets a quarantined record's address; doctor reports every
// quarantined record, until its container is gone and the agent starts
// again (a network's, until all of its containers are).
func TestBadRecordQuarantined(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.a.ok("network", "create", "--subnet=10.1.100.0/24", "host_net")
	c1 := e.runD(e.name("1"), "pub_net")
	e.runD(e.name("2"), "pub_net")
	h1 := e.runD(e.name("h1"), "host_net")
	h2 := e.runD(e.name("h2"), "host_net")
	c3 := e.runD(e.name("3"), "pub_net")
	c4 := e.runD(e.name("4"), "pub_net")
	e.a.stop()
	nstest.PutRecord(t, e.a.stateDir(), "networks", h1.NetworkID, "{garbage")
	c3.State, c3.Network = "bogus", ""
	nstest.PutRecord(t, e.a.stateDir(), "endpoints", c3.ID, nstest.JSON(t, c3))
	c4.Network = ""
	c4.Addrs = append(c4.Addrs, netip.MustParsePrefix("172.16.86.1/24")) // the gateway's
	nstest.PutRecord(t, e.a.stateDir(), "endpoints", c4.ID, nstest.JSON(t, c4))

	e.a.start()
	names := map[string]bool{}
	for _, ep := range e.ps() {
		names[ep.Name] = true
	}
	if !names[c1.Name] || !names[e.name("2")] || names[c3.Name] || names[c4.Name] || names[h1.Name] || names[h2.Name] {
		t.Fatalf("after start: containers %v; want c1 and c2, not the quarantined c3, c4 and host_net ones\n%s", names, e.a.log)
	}
	out, err := e.pingFrom(netnsPath(e.name("2")), c1.Addrs[0].Addr().String(), false)
	e.wantPingOK("pub_net c2 -> c1 with host_net quarantined", out, exitCode(err))
	out, err = e.pingFrom(netnsPath(h2.Name), h1.Addrs[0].Addr().String(), false)
	e.wantPingOK("host_net h2 -> h1: the quarantined network's links are left alone", out, exitCode(err))
	// c3's and c4's containers may still use their addresses: the next
	// container gets another.
	c5 := e.runD(e.name("5"), "pub_net")
	if slices.Contains(c3.Addrs, c5.Addrs[0]) || slices.Contains(c4.Addrs, c5.Addrs[0]) {
		t.Errorf("a new container got %v, an address of a quarantined record (%v, %v)", c5.Addrs[0], c3.Addrs, c4.Addrs)
	}
	d := strings.Join(drift(t, e.a), "\n")
	for _, id := range []string{h1.NetworkID, h1.ID, h2.ID, c3.ID, c4.ID} {
		if !strings.Contains(d, "/"+id+" is quarantined") {
			t.Errorf("doctor does not report %s as quarantined:\n%s", id, d)
		}
	}
	if strings.Contains(d, "IPAM") || strings.Contains(d, "held by") {
		t.Errorf("doctor reports address drift for the quarantined records' addresses:\n%s", d)
	}
	// host_net is gone from network ls, but h1 and h2 still use its
	// addresses: a network made again on its subnet would hand them out.
	if _, errs, code := e.a.mv("network", "create", "--subnet=10.1.100.0/24", "host_again"); code != 1 || !strings.Contains(errs, "network is quarantined or gone") {
		t.Errorf("network create on the quarantined host_net's subnet, h1 and h2 alive: exit %d, %s; want 1, refused", code, errs)
	}
	// Once c4's container is gone, the next start drops its record (and
	// the hold on its address); the others stay.
	e.a.stop()
	if out, err := exec2("ip", "netns", "del", c4.Name); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", c4.Name, err, out)
	}
	e.a.start()
	d = strings.Join(drift(t, e.a), "\n")
	if strings.Contains(d, c4.ID) || !strings.Contains(d, "/"+c3.ID+" is quarantined") {
		t.Errorf("doctor after a start with c4's container gone:\n%s\nwant c3 still quarantined, c4's record dropped", d)
	}
	if c6 := e.runD(e.name("6"), "pub_net"); !slices.Contains(c4.Addrs, c6.Addrs[0]) {
		t.Errorf("a new container got %v; want c4's %v, free again", c6.Addrs[0], c4.Addrs[0])
	}
	// Once host_net's containers are gone too, the next start drops its
	// record and the link mvlan made for it: its subnet is free again.
	e.a.stop()
	for _, c := range []api.Endpoint{h1, h2} {
		if out, err := exec2("ip", "netns", "del", c.Name); err != nil {
			t.Fatalf("ip netns del %s: %v\n%s", c.Name, err, out)
		}
	}
	e.a.start()
	if d = strings.Join(drift(t, e.a), "\n"); strings.Contains(d, h1.NetworkID) {
		t.Errorf("doctor after a start with host_net's containers gone:\n%s\nwant its record dropped", d)
	}
	e.a.ok("network", "create", "--subnet=10.1.100.0/24", "host_again")
	if h3 := e.runD(e.name("h3"), "host_again"); !slices.Contains([]netip.Prefix{h1.Addrs[0], h2.Addrs[0]}, h3.Addrs[0]) {
		t.Errorf("host_again gave %v; want h1's or h2's address, free again", h3.Addrs[0])
	}
}

// TestCorruptStateNoSnapshot: without a usable snapshot a damaged state
// is still refused while containers run; --recover then starts an empty
// state under a new agent ID and leaves the old agent's links alone.
func TestCorruptStateNoSnapshot(t *testing.T) {
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	c1 := e.runD(e.name("1"), "pub_net")
	c2 := e.runD(e.name("2"), "pub_net")
	oldID := agentID(t, e.a)
	e.a.kill()
	dir := e.a.stateDir()
	if err := os.Remove(filepath.Join(dir, store.SnapshotName)); err != nil {
		t.Fatal(err)
	}
	truncate(t, filepath.Join(dir, store.FileName), 0)
	log, code := e.a.runToExit()
	if code == 0 || !strings.Contains(log, "no usable snapshot") || !strings.Contains(log, "mvlan agent --recover") {
		t.Fatalf("start on an emptied state without snapshot: exit %d, want a refusal naming the missing snapshot and the command:\n%s", code, log)
	}
	e.a.flags = []string{"--recover"}
	e.a.start()
	e.a.flags = nil
	if id := agentID(t, e.a); id == oldID {
		t.Fatalf("agent ID %s kept without a snapshot; want a new one", id)
	}
	if eps := e.ps(); len(eps) != 0 {
		t.Fatalf("containers after --recover without snapshot: %v, want none", eps)
	}
	out, err := e.pingFrom(netnsPath(c2.Name), c1.Addrs[0].Addr().String(), false)
	e.wantPingOK("c2 -> c1: the old agent's links are left alone", out, exitCode(err))
}

// TestEmptyStateFirstStart: an empty state file with no snapshot and no
// marked link anywhere (a first start that died before writing it) is
// moved aside and the agent starts.
func TestEmptyStateFirstStart(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	if err := os.MkdirAll(a.stateDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.stateDir(), store.FileName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	if bad, _ := filepath.Glob(filepath.Join(a.stateDir(), store.FileName+".bad-*")); len(bad) != 1 {
		t.Errorf("empty file kept aside: %v, want one", bad)
	}
}

// snapshotEndpoints opens a copy of the snapshot in stateDir and returns
// the names of its endpoints.
func snapshotEndpoints(t *testing.T, stateDir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(stateDir, store.SnapshotName))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	eps, err := s.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range eps {
		names = append(names, e.Name)
	}
	return names
}

// TestRecoverKeepsLostNetwork: a network made after the snapshot (its
// parent a link mvlan made: a host-only network's), with a container, is
// not in the state `mvlan agent --recover` restores; its parent, and with
// it the container's link, stays, and its datapath number is not given to
// the next network (it would share the container's isolation and
// counters).
func TestRecoverKeepsLostNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.a.stop() // a clean stop: the snapshot holds pub_net
	e.a.start()
	id := strings.TrimSpace(e.a.ok("network", "create", "--subnet=172.16.50.0/24", "lost"))
	lostID := e.a.inspectNet("lost").DatapathID
	c := e.runD(e.name("1"), "lost")
	e.a.kill()
	truncate(t, filepath.Join(e.a.stateDir(), store.FileName), 0)

	e.a.flags = []string{"--recover"}
	e.a.start()
	e.a.flags = nil
	if _, _, code := e.a.mv("network", "inspect", "lost"); code == 0 {
		t.Fatal("the network made after the snapshot is in the restored state (a snapshot taken meanwhile): the test would prove nothing")
	}
	if _, ok := links(t, e.sb)["mvl-"+id[:11]]; !ok {
		t.Errorf("the lost network's parent mvl-%s is gone after --recover\n%s", id[:11], e.a.log)
	}
	mustContain(t, "the container's link after --recover", e.in(netnsPath(c.Name), "ip", "-4", "addr", "show", "dev", "eth0"), c.Addrs[0].String())
	e.a.ok("network", "create", "--subnet=172.16.60.0/24", "later")
	if got := e.a.inspectNet("later").DatapathID; got == lostID || got == 0 || lostID == 0 {
		t.Errorf("the network made after --recover has datapath number %d; want another than the lost network's, %d", got, lostID)
	}
}

// TestQuarantinedNetnsPathGone: a quarantined endpoint record whose
// namespace path was removed (ip netns del) while a process keeps the
// namespace, its link in it, is not dropped at start: its address stays
// held, no new container gets it. Once the last process is gone, the next
// start drops it.
func TestQuarantinedNetnsPathGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	c := e.runD(e.name("1"), "pub_net", "--ip", "172.16.86.10")
	e.a.stop()
	c.State = "bogus"
	nstest.PutRecord(t, e.a.stateDir(), "endpoints", c.ID, nstest.JSON(t, c))
	holder := exec.Command("nsenter", "--net="+netnsPath(c.Name), "sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	target, err := nsfile.Inode(netnsPath(c.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool {
		ino, err := nsfile.Inode(fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid))
		return err == nil && ino == target
	}) {
		t.Fatalf("the holder did not enter %s's namespace", c.Name)
	}
	if out, err := exec2("ip", "netns", "del", c.Name); err != nil {
		t.Fatalf("ip netns del %s: %v\n%s", c.Name, err, out)
	}
	e.a.start()
	if d := strings.Join(drift(t, e.a), "\n"); !strings.Contains(d, "/"+c.ID+" is quarantined") {
		t.Errorf("doctor with the record's namespace alive, its path gone:\n%s\nwant %s still quarantined\n%s", d, c.ID, e.a.log)
	}
	if _, errs, code := e.a.mv("run", "-d", "--name", e.name("2"), "--net", "pub_net", "--ip", "172.16.86.10"); code == 0 {
		t.Errorf("run --ip 172.16.86.10, the quarantined container's address: exit 0, %s; want refused", errs)
	}
	_ = holder.Process.Kill()
	_ = holder.Wait()
	e.a.stop()
	e.a.start()
	if d := strings.Join(drift(t, e.a), "\n"); strings.Contains(d, c.ID) {
		t.Errorf("doctor after a start with the namespace gone:\n%s\nwant %s's record dropped", d, c.ID)
	}
}
