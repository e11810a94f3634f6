package main

import (
	"net"
	"net/url"
	"path/filepath"
	"strconv"
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

	hangUp(t, a.socket, "DELETE", "/v1/endpoints?"+url.Values{"network": {"pub_net"}, "netns": {xp}}.Encode(), "")
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
	hangUp(t, a.socket, "DELETE", "/v1/networks/pub_net", "")
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

// TestDockerRemoveClientGone: Docker's DeleteEndpoint whose request is
// cancelled (dockerd stopped or its plugin client timing out) after the
// record says "removing" is finished all the same: Docker does not ask
// again, so the link it moved back and the record would stay until the
// next start.
func TestDockerRemoveClientGone(t *testing.T) {
	t.Parallel()
	sb := nstest.NewSandbox(t)
	a := newAgent(t, sb)
	sock := filepath.Join(a.dir, "mvt-gone.sock")
	a.env = []string{"MVLAN_PLUGIN_SOCKET=" + sock, "MVLAN_TEST_HOLDPOINT=docker-rm:after-state", "MVLAN_TEST_HOLD=300ms"}
	a.start()
	p := &pluginConn{t: t, sb: sb, sock: sock}
	netID := strings.Repeat("5e", 32)
	pool := p.staticNetwork(netID, "172.16.89.0/24")
	c1, ep := sb.Netns(t, "c1"), strings.Repeat("c1", 32)
	p.join(netID, pool, ep, c1, c1)
	waitEndpoint(t, a, ep, "ready")
	p.call("NetworkDriver.Leave", map[string]any{"NetworkID": netID, "EndpointID": ep})
	sb.Run(t, c1, "ip", "link", "set", "eth0", "down", "name", "back0")
	sb.Run(t, c1, "ip", "link", "set", "back0", "netns", filepath.Base(sb.Path))
	if out := sb.Run(t, sb.Path, "ip", "-o", "link", "show", "back0"); !strings.Contains(out, "back0") {
		t.Fatalf("the link Docker moved back is not in the host namespace (the test would prove nothing):\n%s", out)
	}

	body := `{"NetworkID":"` + netID + `","EndpointID":"` + ep + `"}`
	hangUp(t, sock, "POST", "/NetworkDriver.DeleteEndpoint", body)
	gone := waitFor(10*time.Second, func() bool {
		_, err := nstest.RunErr(sb.Path, "ip", "link", "show", "back0")
		for _, e := range a.endpoints() {
			if e.ID == ep {
				return false
			}
		}
		return err != nil
	})
	if !gone {
		out, _ := nstest.RunErr(sb.Path, "ip", "-o", "link", "show", "back0")
		t.Fatalf("DeleteEndpoint whose client hung up: after 10 s back0: %q, endpoints %+v\n%s", out, a.endpoints(), a.log)
	}
}

// hangUp sends one request (body: JSON or empty) to socket and closes
// the connection without reading the answer.
func hangUp(t *testing.T, socket, method, path, body string) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	req := method + " " + path + " HTTP/1.1\r\nHost: mvlan\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
