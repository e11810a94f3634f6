package main

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRmStuckName: rm of an endpoint whose namespace name cannot be taken
// down answers with the busy name and keeps the endpoint for a later
// try; but its link goes, and with it every pin and record of its
// programs, without waiting for a restart. Once the extra mounts are gone,
// rm again finishes and leaves nothing.
//
// The name is bound over itself twice: /run/netns is shared, so that is 4
// mounts, and an unmount (MNT_DETACH) leaves one, on which the unlink
// fails. rm unmounts twice (when it silences the endpoint, and when the
// removal it then finishes at once tears it down); the agent is held
// between the two while the test binds the name over itself again.
func TestRmStuckName(t *testing.T) {
	t.Parallel()
	for _, m := range dpModes {
		if m.name == "auto" {
			continue // its endpoints are tc's
		}
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			e := newDPEnv(t, m)
			e.a.env = []string{"MVLAN_TEST_HOLDPOINT=endpoint-rm:not-silenced", "MVLAN_TEST_HOLD=3s"}
			e.restart()
			c1, _, ep1, _ := e.pubNetPair()
			e.wantPins(2, 4, 0)
			progs1 := e.wantAttached(c1, "eth0")
			t.Cleanup(func() {
				for mounts(t, ep1.Netns) > 1 {
					_ = unix.Unmount(ep1.Netns, unix.MNT_DETACH)
				}
			})
			stack := func() {
				for range 2 {
					if err := unix.Mount(ep1.Netns, ep1.Netns, "", unix.MS_BIND, ""); err != nil {
						t.Fatalf("bind %s over itself: %v", ep1.Netns, err)
					}
				}
			}
			stack()
			type result struct {
				out  string
				code int
			}
			rm := make(chan result, 1)
			go func() {
				out, errs, code := e.a.mv("rm", "-f", c1)
				rm <- result{out + errs, code}
			}()
			if !waitFor(3*time.Second, func() bool { return mounts(t, ep1.Netns) == 1 }) {
				t.Fatalf("rm did not unmount %s: %d mounts", ep1.Netns, mounts(t, ep1.Netns))
			}
			stack()
			if r := <-rm; r.code == 0 || !strings.Contains(r.out, "busy") {
				t.Fatalf("rm -f %s with its name stuck: exit %d, want an error naming the busy name:\n%s", c1, r.code, r.out)
			}
			if links := e.in(e.sb.Path, "ip", "-n", c1, "-o", "link", "show"); strings.Contains(links, "eth0") {
				t.Fatalf("%s still has its link after the failed rm:\n%s", c1, links)
			}
			waitFreed(t, "rm -f "+c1+" with a stuck name", e.ownPrograms(progs1))
			e.wantPins(2, 2, ep1.NetnsCookie)
			if _, ok := e.endpoint(c1); !ok {
				t.Fatalf("mvlan ps lost %s, whose name is still mounted: nothing would take the name down", c1)
			}

			e.a.ok("rm", "-f", c1) // one mount is left: the unmount frees the name
			if !e.waitGone(c1, 5*time.Second) {
				t.Fatalf("mvlan ps still lists %s after the second rm", c1)
			}
			if _, err := os.Stat(ep1.Netns); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s after the second rm: %v, want it gone", ep1.Netns, err)
			}
			e.wantPins(2, 2, ep1.NetnsCookie)
		})
	}
}

// mounts counts the mounts at path (mountinfo's mount point field).
func mounts(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == path {
			n++
		}
	}
	return n
}
