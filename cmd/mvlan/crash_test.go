package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/link"
)

// drift runs `mvlan doctor` and returns the agent's drift problems.
func drift(t *testing.T, a *agentProc) []string {
	t.Helper()
	var out doctorOutput
	if err := json.Unmarshal([]byte(a.ok("doctor", "--format", "json")), &out); err != nil {
		t.Fatal(err)
	}
	var problems []string
	for _, s := range out.Sections {
		for _, c := range s.Checks {
			if s.Name == "agent" && !c.OK {
				problems = append(problems, c.Detail)
			}
		}
	}
	return problems
}

// assertConsistent: no drift, and the containers' namespaces on disk are
// exactly the ones mvlan lists.
func assertConsistent(t *testing.T, a *agentProc, prefix string) {
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
		t.Fatalf("mvlan ps lists %v but /run/netns has %v", listed, onDisk)
	}
	for name, alias := range links(t, a.sb) {
		if strings.HasPrefix(name, "mvtmp") || strings.Contains(alias, "/ep/") {
			t.Fatalf("leaked link %s (%s) in the host namespace", name, alias)
		}
	}
}

func cleanupContainers(t testing.TB, prefix string) {
	t.Cleanup(func() {
		paths, _ := filepath.Glob("/run/netns/" + prefix + "*")
		for _, p := range paths {
			if err := link.DeleteNetns(filepath.Base(p)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

// TestEndpointCrashPoints kills the agent between each step of attach and
// detach; after a restart state, links and IPAM agree.
func TestEndpointCrashPoints(t *testing.T) {
	for _, point := range []string{"endpoint-create:after-state", "endpoint-create:after-netns",
		"endpoint-create:after-link", "endpoint-rm:after-state"} {
		t.Run(point, func(t *testing.T) {
			sb := nstest.NewSandbox(t)
			prefix := sb.Name + "-c"
			cleanupContainers(t, prefix)
			a := newAgent(t, sb)
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
			// Whatever survived works, and the addresses are usable again.
			a.mv("rm", "-f", prefix+"1", prefix+"2")
			a.ok("run", "-d", "--name", prefix+"3", "--net", "pub_net", "--ip", "172.16.86.11")
			a.ok("rm", "-f", prefix+"3")
			a.ok("network", "rm", "pub_net")
		})
	}
}

// TestCrashStream SIGKILLs the agent at random moments during a stream of
// run and rm; after each restart state, links and IPAM agree exactly.
func TestCrashStream(t *testing.T) {
	sb := nstest.NewSandbox(t)
	prefix := sb.Name + "-c"
	cleanupContainers(t, prefix)
	a := newAgent(t, sb)
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for round := range 5 {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("%s%d", prefix, rng.IntN(6))
				if _, _, code := a.mv("run", "-d", "--name", name, "--net", "pub_net"); code != 0 {
					a.mv("rm", "-f", name)
				}
			}
		}()
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		a.kill()
		close(stop)
		<-done
		a.start()
		t.Logf("round %d: restarted", round)
		assertConsistent(t, a, prefix)
	}
}
