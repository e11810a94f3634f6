package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestCNINetnsElsewhere: a runtime whose CNI_NETNS names another
// namespace where the agent looks (here: the runtime's mount namespace
// has a bind mount of namespace b on a's path; a PID namespace does the
// same to /proc/PID/ns/net) is refused with code 7 naming the path and
// what to give instead, and neither namespace is attached. The same ADD
// where both see one namespace attaches it; a CHECK from the other view
// then finds no attachment in its namespace (3), one from here passes.
func TestCNINetnsElsewhere(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	e := newEnv(t)
	e.pubNet()
	a, b := e.sb.Netns(t, "a"), e.sb.Netns(t, "b")
	conf := `{"cniVersion":"1.1.0","name":"mvnet","type":"mvlan","network":"pub_net","socket":"` + e.a.Socket + `"}`
	elsewhere, here := `mount --bind "$2" "$1"; exec "$3"`, `exec "$3"`
	run := func(command, script string) (string, error) {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "sh", a, b, cniDir+"/mvlan")
		cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=ctr-a", "CNI_NETNS=" + a, "CNI_IFNAME=eth0", "CNI_PATH=" + cniDir}
		cmd.Stdin = strings.NewReader(conf)
		out, err := cmd.Output()
		return string(out), err
	}
	out, _ := run("ADD", elsewhere)
	var got types.Error
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Code != types.ErrInvalidNetworkConfig ||
		!strings.Contains(got.Msg, a+" is net:[") || !strings.Contains(got.Msg, "where the request was made") || !strings.Contains(got.Msg, "under /run/netns") {
		t.Fatalf("ADD with %s bound to %s in the runtime's mount namespace: %s; want code 7 naming %s and the two namespaces", a, b, out, a)
	}
	if eps := e.endpoints(); len(eps) != 0 {
		t.Fatalf("endpoints after the refused ADD: %+v; want none", eps)
	}
	for _, ns := range []string{a, b} {
		if got := addrs(t, ns, "eth0"); got != "" {
			t.Errorf("%s has eth0 after the refused ADD: %s", ns, got)
		}
	}
	if out, err := run("ADD", here); err != nil || !strings.Contains(out, `"172.16.86.`) {
		t.Fatalf("ADD with %s the same namespace for both: %v: %s; want an address", a, err, out)
	}
	if got := addrs(t, a, "eth0"); !strings.Contains(got, "172.16.86.") {
		t.Errorf("%s's eth0 after the ADD: %q; want an address of pub_net", a, got)
	}
	// CHECK from there says the attachment is not in its namespace.
	out, _ = run("CHECK", elsewhere)
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Code != types.ErrUnknownContainer || !strings.Contains(got.Msg, "no attachment") {
		t.Errorf("CHECK with %s bound to %s: %s; want code %d, no attachment there", a, b, out, types.ErrUnknownContainer)
	}
	if out, err := run("CHECK", here); err != nil {
		t.Errorf("CHECK where both see %s: %v: %s", a, err, out)
	}
}
