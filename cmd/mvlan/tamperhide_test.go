package main

import (
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestTamperHiddenNested: container 1 makes a nested macvlan, deletes its
// eth0 and puts a veth of its own at eth0's ifindex (in one `ip -batch`,
// between two checks), as if to pass the veth's peer off as the parent the
// nested link must be on. The tamper check still finds the nested link on
// the network's parent and deletes it within 1 s, and puts no program on
// the veth: its hooks count as detached, not repaired.
func TestTamperHiddenNested(t *testing.T) {
	e, c1, _, _ := tamperEnv(t, dpModes[0], true)
	idx := strings.Fields(e.in(c1, "ip", "-o", "link", "show", "dev", "eth0"))[0]
	idx = strings.TrimSuffix(idx, ":")
	detached := map[string]string{"reason": "detached"}
	reattached := counter(e.view("", "").scrape(), "mvlan_datapath_reattach_total", detached)
	e.in(c1, "sh", "-c", `printf '%s\n' \
		'link add link eth0 name sniff type macvlan mode bridge' \
		'link del eth0' \
		'link add eth0 index `+idx+` type veth peer name vp index 77' | ip -batch -`)
	e.detected("nested_link", 1, true)
	if out, err := nstest.RunErr(c1, "ip", "link", "show", "sniff"); err == nil {
		t.Errorf("the nested link is still there:\n%s", out)
	}
	text := e.view("", "").scrape()
	if got := counter(text, "mvlan_datapath_tamper_total", detached); got == 0 {
		t.Errorf("mvlan_datapath_tamper_total%v = 0; want the veth at eth0's index counted (its hooks have no program of the endpoint)", detached)
	}
	if got := counter(text, "mvlan_datapath_reattach_total", detached); got != reattached {
		t.Errorf("mvlan_datapath_reattach_total%v moved by %d; want 0: the veth is not the endpoint's link", detached, got-reattached)
	}
	if out := e.in(c1, "tc", "filter", "show", "dev", "eth0", "ingress"); strings.Contains(out, "bpf") {
		t.Errorf("a program on the container's veth:\n%s", out)
	}
}
