package main

import (
	"strings"
	"testing"
)

// TestParentAttachFailureLeavesNothing: a network create whose parent
// programs cannot all be attached (here: under --attach-mode tc, the
// operator's own cls_bpf filter holds mvlan's priority and handle on the
// parent's egress) fails, names the filter, and leaves nothing of mvlan
// on the parent: parent_ingress, put on before egress failed, is taken
// off again. Once the operator moves the filter, the create works.
func TestParentAttachFailureLeavesNothing(t *testing.T) {
	e := newDPEnv(t, dpModes[2]) // tc
	sb := e.sb
	sb.Run(t, sb.Path, "tc", "qdisc", "add", "dev", "eth0", "clsact")
	sb.Run(t, sb.Path, "tc", "filter", "add", "dev", "eth0", "egress", "pref", "19798", "handle", "1", "protocol", "all", "bpf", "bytecode", "1,6 0 0 0,")
	_, errs, code := e.a.mv("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	if code != 1 || !strings.Contains(errs, "foreign bpf filter holds priority 19798") {
		t.Fatalf("network create with the operator's filter in mvlan's place: exit %d, %q; want 1 naming the filter", code, errs)
	}
	if out := sb.Run(t, sb.Path, "tc", "filter", "show", "dev", "eth0", "ingress"); strings.Contains(out, "mvlan:") {
		t.Errorf("the failed create left mvlan's filter on eth0's ingress:\n%s", out)
	}
	if at := e.view("", "").stats().Attachments; len(at) != 0 {
		t.Errorf("attachments after the failed create: %+v", at)
	}
	if rows := parentRows(t, e.a); len(rows) != 0 {
		t.Errorf("parents rows after the failed create: %v", rows)
	}
	if q := e.a.ok("network", "ls", "-q"); q != "" {
		t.Errorf("network left behind: %q", q)
	}
	sb.Run(t, sb.Path, "tc", "filter", "del", "dev", "eth0", "egress", "pref", "19798")
	e.a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	e.wantMode(2)
}
