package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// runCluster measures networks of scope cluster (issue 15): attaches
// through the API on a cluster network interleaved with attaches on a
// local one of the same agent (etcd in the wire namespace), with the
// default duplicate address probe and without it; and block allocations
// per second by three hosts contending for one pool (cluster.Pool, the
// agents' allocator, against the same etcd).
func runCluster(ctx context.Context, e *env, r *report) error {
	sb, err := e.sandbox("cl")
	if err != nil {
		return err
	}
	if err := errorsFirst(
		func() error { return sb.veth("eth1", "wire1") },
		func() error {
			_, err := nsRun(sb.wire, "ip", "addr", "add", "192.168.78.1/24", "dev", "wire0")
			return err
		},
		func() error {
			_, err := nsRun(sb.host, "ip", "addr", "add", "192.168.78.2/24", "dev", "eth0")
			return err
		},
	); err != nil {
		return err
	}
	url, err := e.startEtcd(ctx, sb.wire, "192.168.78.1")
	if err != nil {
		return err
	}
	n := 100
	if e.cfg.quick {
		n = 20
	}
	res := map[string][2]samples{}
	a := e.newAgent("cluster", sb.host, "")
	for _, dad := range []string{"100ms", "0"} {
		a.extra = []string{"--cluster", url, "--cluster-dad", dad}
		if _, err := a.start(ctx); err != nil {
			return err
		}
		if dad != "0" { // the networks stay in the state for the second agent
			if err := clusterNetworks(ctx, a); err != nil {
				return err
			}
		}
		c, l, err := interleavedAttach(ctx, e, a, n, "cl"+dad[:1])
		if err != nil {
			return err
		}
		res[dad] = [2]samples{c, l}
		progress("cluster: attach p50 cluster %.1f ms, local %.1f ms (--cluster-dad %s, %d each)", c.median(), l.median(), dad, n)
		if err := a.stop(); err != nil {
			return err
		}
	}
	local, err := e.startEtcd(ctx, "", "127.0.0.1") // the pools run in this process's namespace
	if err != nil {
		return err
	}
	rate, err := contendedAllocs(ctx, local, 3, 300)
	if err != nil {
		return err
	}
	progress("cluster: 3 hosts allocate 900 addresses at %.0f allocations/s", rate)
	c, l := res["100ms"][0], res["100ms"][1]
	r.set("cluster.attach_ms_p50", c.median())
	r.set("cluster.local_attach_ms_p50", l.median())
	r.set("cluster.attach_vs_local", ratio(c.median(), l.median()))
	r.set("cluster.attach_nodad_ms_p50", res["0"][0].median())
	r.set("cluster.allocs_per_s_3hosts", rate)
	s := r.section("cluster: networks that span hosts (etcd)")
	s.para("Attaches through the API, %d on a cluster network interleaved with %d on a local one of the same agent; etcd (Debian's) in the wire namespace. The duplicate address probe (`--cluster-dad`) waits its whole window when nothing answers.", n, n)
	t := s.table("attach", "p50 ms", "min", "max", "n")
	t.row(append([]string{"cluster network, --cluster-dad 100ms (default)"}, statCells(c)...)...)
	t.row(append([]string{"cluster network, --cluster-dad 0"}, statCells(res["0"][0])...)...)
	t.row(append([]string{"local network"}, statCells(l)...)...)
	s.para("Three hosts (cluster.Pool, /28 blocks) allocate 300 addresses each from one /20 at once: %.0f allocations/s.", rate)
	return nil
}

// clusterNetworks makes the cluster network cnet on eth0 and the local
// lnet on eth1.
func clusterNetworks(ctx context.Context, a *agentProc) error {
	for _, args := range [][]string{
		{"network", "create", "--scope", "cluster", "--subnet", "10.88.0.0/16", "-o", "parent=eth0", "cnet"},
		{"network", "create", "--subnet", "10.89.0.0/16", "-o", "parent=eth1", "lnet"},
	} {
		if _, _, err := a.mv(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// interleavedAttach attaches n endpoints on cnet and n on lnet, one
// after another, alternating; then removes them.
func interleavedAttach(ctx context.Context, e *env, a *agentProc, n int, tag string) (cl, lo samples, err error) {
	c := api.NewClient(a.socket)
	defer c.Close()
	for i := range n {
		for _, nw := range []string{"cnet", "lnet"} {
			t0 := time.Now()
			if _, err := c.CreateEndpoint(ctx, api.EndpointCreate{Network: nw, Name: e.endpointName(tag+nw, i)}); err != nil {
				return nil, nil, fmt.Errorf("attach on %s: %w", nw, err)
			}
			if nw == "cnet" {
				cl = append(cl, ms(time.Since(t0)))
			} else {
				lo = append(lo, ms(time.Since(t0)))
			}
		}
	}
	for i := range n {
		for _, nw := range []string{"cnet", "lnet"} {
			if err := c.RemoveEndpoint(ctx, e.endpointName(tag+nw, i), true); err != nil {
				return nil, nil, err
			}
		}
	}
	return cl, lo, nil
}

// contendedAllocs has hosts pools allocate per addresses each, all at
// once, and returns allocations per second.
func contendedAllocs(ctx context.Context, url string, hosts, per int) (float64, error) {
	dir, err := os.MkdirTemp("", "mvbench-pools-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.90.0.0/20")}
	id := store.NewID()
	nw := cluster.Network{ID: id, Name: "bench-contend-" + id[:12]}
	var pools []*cluster.Pool
	for h := range hosts {
		c, err := cluster.Dial(cluster.Config{URL: url, Host: fmt.Sprint("bench", h)})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		if h == 0 {
			_, _, err = c.Define(ctx, cluster.Definition{ID: nw.ID, Create: api.NetworkCreate{Name: nw.Name, Subnets: []string{cfg.Subnet.String()}}})
		} else {
			err = c.Join(ctx, nw.Name, nw.ID)
		}
		if err != nil {
			return 0, err
		}
		p, err := c.OpenPool(nw, cfg, 28, filepath.Join(dir, fmt.Sprint(h)))
		if err != nil {
			return 0, err
		}
		pools = append(pools, p)
	}
	var wg sync.WaitGroup
	errc := make(chan error, hosts)
	t0 := time.Now()
	for _, p := range pools {
		wg.Go(func() {
			for i := range per {
				if _, err := p.Allocate(ctx, fmt.Sprint("ep", i)); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(t0)
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(hosts*per) / d.Seconds(), nil
}

// startEtcd runs Debian's etcd in namespace ns on ip:2379 (ns "": in
// this one, on free ports of ip) until the end and returns its etcd://
// URL.
func (e *env) startEtcd(ctx context.Context, ns, ip string) (string, error) {
	bin, err := lookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("etcd not found in PATH (apt-get install etcd-server; make deps does)")
	}
	client, peer := net.JoinHostPort(ip, "2379"), net.JoinHostPort(ip, "2380")
	argv := []string{bin}
	if ns != "" {
		argv = []string{"nsenter", "--net=" + ns, "--", bin}
	} else if client, peer, err = freePorts(ip); err != nil {
		return "", err
	}
	data, err := os.MkdirTemp(e.tmp, "etcd-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(argv[0], append(argv[1:], "--data-dir", data, "--name", "b",
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "b=http://"+peer, "--log-level", "error")...)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	e.onCleanup("stop etcd", func() error {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		return nil
	})
	for t0 := time.Now(); time.Since(t0) < 20*time.Second && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		dial := func() error {
			c, err := net.DialTimeout("tcp", client, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		}
		err := dial()
		if ns != "" {
			err = nstest.In(ns, dial)
		}
		if err == nil {
			return "etcd://" + client, nil
		}
	}
	return "", fmt.Errorf("etcd did not serve on %s within 20 s", client)
}

// freePorts returns two HOST:PORTs of ip free a moment ago.
func freePorts(ip string) (string, string, error) {
	var out [2]string
	for i := range out {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return "", "", err
		}
		out[i] = l.Addr().String()
		defer l.Close()
	}
	return out[0], out[1], nil
}
