package main

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// TestRestartPersistence: networks survive a restart; a missing owned link
// is recreated (as after a reboot); a missing operator link is reported,
// not recreated, and does not stop the agent.
func TestRestartPersistence(t *testing.T) {
	sb := nstest.NewSandbox(t)
	sb.AddVeth(t, "eth1")
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	a.ok("network", "create", "--subnet=172.16.90.0/24", "-o", "parent=eth1", "net1")
	id := strings.TrimSpace(a.ok("network", "create", "--subnet=10.9.0.0/24", "local"))
	hostOnly := "mvl-" + id[:11]
	a.stop()
	if _, err := os.Stat(a.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left after SIGTERM: %v", err)
	}
	sb.Run(t, sb.Path, "ip", "link", "del", hostOnly) // as after a reboot
	sb.Run(t, sb.Path, "ip", "link", "del", "eth1")   // the operator removed it
	a.start()
	if _, ok := links(t, sb)[hostOnly]; !ok {
		t.Fatalf("owned link %s not recreated on start\n%s", hostOnly, a.log)
	}
	if _, ok := links(t, sb)["eth1"]; ok {
		t.Fatal("agent recreated eth1, a link it did not create")
	}
	ls := a.ok("network", "ls")
	for _, want := range []string{"pub_net", "local", "net1", "parent link eth1 is missing"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("ls after restart lacks %q:\n%s", want, ls)
		}
	}
	a.ok("network", "rm", "net1", "local", "pub_net")
	if _, ok := links(t, sb)[hostOnly]; ok {
		t.Fatalf("rm left %s", hostOnly)
	}
}

// TestCrashPoints kills the agent between the kernel step and the state
// step of create and rm; after a restart nothing is leaked and everything
// that is in state can be removed.
func TestCrashPoints(t *testing.T) {
	tests := []struct {
		point       string
		networkLeft bool // the network exists after restart
	}{
		{"network-create:after-link", false},
		{"network-create:after-state", true},
		{"network-rm:after-state", false},
	}
	for _, tt := range tests {
		t.Run(tt.point, func(t *testing.T) {
			sb := nstest.NewSandbox(t)
			a := newAgent(t, sb)
			before := links(t, sb)
			if strings.HasPrefix(tt.point, "network-rm") {
				a.start()
				a.ok("network", "create", "--subnet=10.9.0.0/24", "local")
				a.stop()
			}
			a.start("MVLAN_TEST_CRASHPOINT=" + tt.point)
			if strings.HasPrefix(tt.point, "network-rm") {
				a.mv("network", "rm", "local")
			} else {
				a.mv("network", "create", "--subnet=10.9.0.0/24", "local")
			}
			a.waitExit()
			a.start()
			ls := a.ok("network", "ls", "-q")
			if got := ls != ""; got != tt.networkLeft {
				t.Fatalf("network present after restart = %v, want %v", got, tt.networkLeft)
			}
			if tt.networkLeft {
				a.ok("network", "rm", "local")
			}
			after := links(t, sb)
			if !maps.Equal(after, before) {
				t.Fatalf("links differ from before: before %v, after %v\n%s", before, after, a.log)
			}
		})
	}
}

// TestStaleLinksRemoved: half-made links and links carrying this agent's
// mark that no network needs go on start; other agents' links stay.
func TestStaleLinksRemoved(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	b := newAgent(t, sb)
	a.start()
	b.start()
	idB := strings.TrimSpace(b.ok("network", "create", "--subnet=10.8.0.0/24", "b-local"))
	a.stop()
	agentID := readAgentID(t, a)
	ours := link.TempPrefixFor(agentID) + "abcd"
	theirs := link.TempPrefixFor("0badc0de") + "abcd" // another agent's, mid-creation
	sb.Run(t, sb.Path, "ip", "link", "add", ours, "type", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "add", theirs, "type", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "add", "orphan0", "type", "bridge")
	sb.Run(t, sb.Path, "ip", "link", "set", "orphan0", "alias", "mvlan/"+agentID+"/net/0123456789")
	a.start()
	l := links(t, sb)
	if _, ok := l[theirs]; !ok {
		t.Errorf("agent A removed another agent's half-made link %s", theirs)
	}
	for _, gone := range []string{ours, "orphan0"} {
		if _, ok := l[gone]; ok {
			t.Errorf("stale link %s not removed", gone)
		}
	}
	if _, ok := l["mvl-"+idB[:11]]; !ok {
		t.Errorf("agent A removed agent B's link mvl-%s", idB[:11])
	}
	b.ok("network", "rm", "b-local")
}

// TestOneAgentPerStateDir: a second agent on the same state dir refuses.
func TestOneAgentPerStateDir(t *testing.T) {
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.start()
	for _, f := range []string{a.socket, filepath.Join(a.dir, "state", "mvlan.db")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	out, err := nstest.RunErr(sb.Path, mvlanBin, "--socket", filepath.Join(a.dir, "other.sock"), "agent",
		"--state-dir", filepath.Join(a.dir, "state"), "--metrics-addr", "")
	if err == nil || !strings.Contains(out, "in use by another agent") {
		t.Fatalf("second agent on one state dir: err %v, output:\n%s", err, out)
	}
}

// TestOneAgentPerBPFFS: a second agent with its own state dir and socket
// but the first one's --bpffs refuses to start, saying so, and the first
// agent's spoof protection still works afterwards (a second agent on the
// same endpoint table would have pruned the first one's endpoints).
func TestOneAgentPerBPFFS(t *testing.T) {
	e := newStatsEnv(t)
	dir := t.TempDir()
	b := exec.Command("nsenter", "--net="+e.sb.Path, "--", mvlanBin, "--socket", filepath.Join(dir, "b.sock"), "agent",
		"--state-dir", filepath.Join(dir, "state"), "--metrics-addr", "", "--plugin-socket", "",
		"--bpffs", filepath.Join(e.a.dir, "bpf"))
	out := &lockedBuffer{}
	b.Stdout, b.Stderr = out, out
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "bpffs directory is in use by another agent") ||
			!strings.Contains(out.String(), filepath.Join(e.a.dir, "bpf")) {
			t.Errorf("second agent on one --bpffs: exit %v, output:\n%s", err, out)
		}
	case <-waitSocket(filepath.Join(dir, "b.sock"), 10*time.Second):
		t.Errorf("a second agent started on the first one's --bpffs:\n%s", out)
		_ = b.Process.Kill()
		<-done
	}
	e.mustPing(e.c2, "172.16.86.10") // resolves the neighbours: spoof() then sends IP, not ARP
	e.spoof()
}

// waitSocket is closed when path exists or after d.
func waitSocket(path string, d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(path); err == nil {
				return
			}
		}
	}()
	return ch
}

func readAgentID(t *testing.T, a *agentProc) string {
	t.Helper()
	st, err := store.Open(filepath.Join(a.dir, "state"))
	if err != nil {
		t.Fatalf("open stopped agent's state: %v", err)
	}
	defer st.Close()
	return st.AgentID()
}

// TestCrashNetworkRmParent: a network rm killed after the network's
// record went, before its parent's programs did (tc mode: filters and
// clsact on eth0, an existing link mvlan does not delete), leaves nothing
// on eth0 after the next start: no later step would take them away, and
// they would go on counting eth0's frames.
func TestCrashNetworkRmParent(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.flags = []string{"--attach-mode", "tc"}
	a.start()
	a.ok("network", "create", "--subnet=10.9.1.0/24", "-o", "parent=eth0", "pub_net")
	tcState := func() string {
		return sb.Run(t, sb.Path, "tc", "filter", "show", "dev", "eth0", "ingress") +
			sb.Run(t, sb.Path, "tc", "filter", "show", "dev", "eth0", "egress") +
			sb.Run(t, sb.Path, "tc", "qdisc", "show", "dev", "eth0")
	}
	if s := tcState(); !strings.Contains(s, "bpf") || !strings.Contains(s, "clsact") {
		t.Fatalf("no mvlan filters on eth0 before the rm (the test would prove nothing):\n%s", s)
	}
	a.stop()
	a.start("MVLAN_TEST_CRASHPOINT=network-rm:after-state")
	a.mv("network", "rm", "pub_net")
	a.waitExit()
	if s := tcState(); !strings.Contains(s, "bpf") {
		t.Fatalf("the killed rm left no filters on eth0 (the test would prove nothing):\n%s", s)
	}
	a.start()
	if ls := a.ok("network", "ls", "-q"); ls != "" {
		t.Fatalf("networks after the restart: %q, want none", ls)
	}
	if s := tcState(); strings.Contains(s, "bpf") || strings.Contains(s, "clsact") {
		t.Errorf("after the restart eth0 still has mvlan's filters or clsact:\n%s\n%s", s, a.log)
	}
}
