package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestMountNamespace: started in a mount namespace of its own (unshare
// -m, as ip netns exec or a unit with PrivateMounts would), the agent
// refuses to run and says how to run it, and mvlan doctor reports the
// namespace; from the host's, doctor says it is PID 1's. About 5 s.
func TestMountNamespace(t *testing.T) {
	if mvlanBin == "" {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	sb := nstest.NewSandbox(t) // should the refusal break, the agent runs there, not in the host's
	_, errs, code := runCmd(20*time.Second, "nsenter", "--net="+sb.Path, "--", "unshare", "-m", mvlanBin, "--socket", filepath.Join(dir, "s.sock"), "agent",
		"--state-dir", filepath.Join(dir, "state"), "--metrics-addr", "", "--plugin-socket", "", "--bpffs", filepath.Join(dir, "bpf"))
	if code != 1 || !strings.Contains(errs, "mount namespace of its own") || !strings.Contains(errs, "nsenter --net=") {
		t.Errorf("agent under unshare -m: exit %d, %q; want 1, the reason and how to run it", code, errs)
	}
	for _, tc := range []struct {
		prefix []string
		ok     bool
	}{{nil, true}, {[]string{"unshare", "-m"}, false}} {
		argv := append(append(tc.prefix, mvlanBin, "--socket", filepath.Join(dir, "s.sock")), "doctor", "--format", "json")
		out, errs, code := runCmd(60*time.Second, argv[0], argv[1:]...)
		var rep struct {
			Sections []struct {
				Checks []struct {
					Name string
					OK   bool
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
			t.Fatalf("%v: exit %d, %v\n%s", argv, code, err, errs)
		}
		found := false
		for _, s := range rep.Sections {
			for _, c := range s.Checks {
				if c.Name == "mount namespace" {
					found = true
					if c.OK != tc.ok {
						t.Errorf("%v: mount namespace ok=%v, want %v", argv, c.OK, tc.ok)
					}
				}
			}
		}
		if !found {
			t.Errorf("%v: no mount namespace check in\n%s", argv, out)
		}
	}
}
