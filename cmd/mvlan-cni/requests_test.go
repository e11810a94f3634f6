package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/mvlan/mvlan/api"
)

// relay sits between the plugin and the agent's socket and records the
// request line of each connection (the client sends one request per
// connection): how many requests a command costs.
type relay struct {
	sock string
	mu   sync.Mutex
	reqs []string
}

func newRelay(t *testing.T, agent string) *relay {
	t.Helper()
	r := &relay{sock: filepath.Join(t.TempDir(), "relay.sock")}
	ln, err := net.Listen("unix", r.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.pipe(c, agent)
		}
	}()
	return r
}

func (r *relay) pipe(c net.Conn, agent string) {
	defer c.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, strings.TrimSuffix(line, " HTTP/1.0\r\n"))
	r.mu.Unlock()
	up, err := net.Dial("unix", agent)
	if err != nil {
		return
	}
	defer up.Close()
	go func() {
		_, _ = io.WriteString(up, line)
		_, _ = io.Copy(up, br)
	}()
	_, _ = io.Copy(c, up)
}

// take returns the requests recorded since the last call.
func (r *relay) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// TestCNIRequests: ADD and DEL of a named network are one request to the
// agent each (a relay between plugin and agent counts them), also a DEL
// of what is gone, and the ADD's result still has the network's gateway
// and default route. The agent's one-request ADD refuses a body naming
// another network or without the runtime's identity, answers not_found
// for a network it has not, and none of them leaves an endpoint.
func TestCNIRequests(t *testing.T) {
	e := newEnv(t)
	e.pubNet()
	rl := newRelay(t, e.a.Socket)
	raw := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"mvnet","plugins":[{"type":"mvlan","network":"pub_net","socket":%q}]}`, rl.sock)
	l, err := libcni.NetworkConfFromBytes([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	rt := e.container("r")
	r := e.add(l, rt)
	// One request, which says which namespace the runtime's path is.
	want := fmt.Sprintf("POST /v1/networks/pub_net/cni?netns_inode=%d", api.NetnsInode(rt.NetNS))
	if got := rl.take(); !slices.Equal(got, []string{want}) || strings.HasSuffix(want, "=0") {
		t.Errorf("ADD's requests: %q; want the one %s", got, want)
	}
	if len(r.IPs) != 1 || r.IPs[0].Gateway.String() != "172.16.86.1" || len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" {
		t.Errorf("ADD result %+v; want one address via 172.16.86.1 and a default route", r)
	}
	for _, what := range []string{"DEL", "DEL of what is gone"} {
		e.del(l, rt)
		if got := rl.take(); len(got) != 1 || !strings.HasPrefix(got[0], "DELETE /v1/networks/pub_net/cni?") {
			t.Errorf("%s's requests: %q; want one DELETE /v1/networks/pub_net/cni?...", what, got)
		}
	}
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after DEL: %+v; want none", eps)
	}

	cl := api.NewClient(e.a.Socket)
	at := &api.CNIAttachment{Network: "mvnet", ContainerID: "ctr-api", IfName: "eth0"}
	for _, c := range []struct {
		what, ref string
		req       api.EndpointCreate
		kind      string
		says      string
	}{
		{"no network", "nope", api.EndpointCreate{Netns: rt.NetNS, CNI: at}, api.KindNotFound, `"nope"`},
		{"another network in the body", "pub_net", api.EndpointCreate{Network: "other", Netns: rt.NetNS, CNI: at}, api.KindInvalid, `"other"`},
		{"no identity", "pub_net", api.EndpointCreate{Netns: rt.NetNS}, api.KindInvalid, `"cni"`},
	} {
		_, err := cl.CNIAdd(context.Background(), c.ref, c.req)
		if !api.IsKind(err, c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v; want %s saying %s", c.what, err, c.kind, c.says)
		}
	}
	if err := cl.CNIRelease(context.Background(), "pub_net", *at, ""); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("release of no attachment: %v; want not_found", err)
	}
	if eps := e.endpoints(); len(eps) != 0 {
		t.Errorf("endpoints after refused requests: %+v; want none", eps)
	}
	e.noDrift()
}
