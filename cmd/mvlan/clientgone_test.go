package main

import (
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// TestRemoveClientGone: a removal whose client hangs up before the answer
// (Ctrl-C on `mvlan disconnect` or `mvlan network rm`, a CNI DEL its
// runtime killed) is finished all the same once it is recorded: the link
// leaves the operator's namespace and the record goes; the network's
// filters and clsact leave its parent (tc mode). The agent holds each
// removal just after its record is written, so the hang-up has been seen
// by then.
func TestRemoveClientGone(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	a.flags = []string{"--attach-mode", "tc"}
	a.env = []string{"MVLAN_TEST_HOLDPOINT=endpoint-rm:after-state,network-rm:after-state", "MVLAN_TEST_HOLD=300ms"}
	a.start()
	a.ok("network", "create", "--subnet=172.16.86.0/24", "-o", "parent=eth0", "pub_net")
	xp := nstest.NewNetns(t, sb.Name+"-x1")
	a.ok("connect", "pub_net", xp)
	if len(a.endpoints()) != 1 {
		t.Fatalf("connect: endpoints %+v, want one", a.endpoints())
	}

	hangUp(t, a.socket, "DELETE", "/v1/endpoints?"+url.Values{"network": {"pub_net"}, "netns": {xp}}.Encode())
	gone := waitFor(10*time.Second, func() bool {
		_, err := nstest.RunErr(xp, "ip", "link", "show", "eth0")
		return err != nil && len(a.endpoints()) == 0
	})
	if !gone {
		out, _ := nstest.RunErr(xp, "ip", "link", "show", "eth0")
		t.Fatalf("disconnect whose client hung up: after 10 s eth0 in %s: %q, endpoints %+v\n%s", xp, out, a.endpoints(), a.log)
	}

	if out := sb.Run(t, sb.Path, "tc", "filter", "show", "dev", "eth0", "ingress"); !strings.Contains(out, "bpf") {
		t.Fatalf("no mvlan filter on eth0 before network rm (the test would prove nothing):\n%s", out)
	}
	hangUp(t, a.socket, "DELETE", "/v1/networks/pub_net")
	var filters, qdiscs string
	clean := waitFor(10*time.Second, func() bool {
		filters = sb.Run(t, sb.Path, "tc", "filter", "show", "dev", "eth0", "ingress") +
			sb.Run(t, sb.Path, "tc", "filter", "show", "dev", "eth0", "egress")
		qdiscs = sb.Run(t, sb.Path, "tc", "qdisc", "show", "dev", "eth0")
		return filters == "" && !strings.Contains(qdiscs, "clsact") && a.ok("network", "ls", "-q") == ""
	})
	if !clean {
		t.Fatalf("network rm whose client hung up: after 10 s eth0 has filters %q, qdiscs %q; networks %q\n%s",
			filters, qdiscs, a.ok("network", "ls", "-q"), a.log)
	}
}

// hangUp sends one request to the agent's socket and closes the
// connection without reading the answer.
func hangUp(t *testing.T, socket, method, path string) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(method + " " + path + " HTTP/1.1\r\nHost: mvlan\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
