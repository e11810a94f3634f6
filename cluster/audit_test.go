package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// claimHolder is who etcd has claim a of network nw for ("": nobody).
func claimHolder(t *testing.T, c *Client, nw string, a netip.Addr) string {
	t.Helper()
	r, err := c.cli.Get(context.Background(), claimKey(nw, a))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	return string(r.Kvs[0].Value)
}

// muffler is a TCP proxy to etcd that can stop passing etcd's answers
// on (requests still reach etcd), then cut its connections: an answer
// lost on the way, as a timeout or a partition has it.
type muffler struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	mute   bool
	conns  []net.Conn
}

func newMuffler(t *testing.T, target string) *muffler {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &muffler{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); m.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go m.serve(c)
		}
	}()
	return m
}

func (m *muffler) serve(c net.Conn) {
	d, err := net.Dial("tcp", m.target)
	if err != nil {
		c.Close()
		return
	}
	m.mu.Lock()
	m.conns = append(m.conns, c, d)
	m.mu.Unlock()
	go io.Copy(d, c)
	buf := make([]byte, 32<<10)
	for {
		n, err := d.Read(buf)
		if err != nil {
			c.Close()
			return
		}
		m.mu.Lock()
		mute := m.mute
		m.mu.Unlock()
		if !mute {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// setMute stops (true) or resumes passing answers on; resuming cuts the
// connections, whose streams lost bytes.
func (m *muffler) setMute(on bool) {
	m.mu.Lock()
	m.mute = on
	m.mu.Unlock()
	if !on {
		m.cut()
	}
}

func (m *muffler) cut() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		c.Close()
	}
	m.conns = nil
}

// TestLostClaimGivenBack: a claim of host A that reached etcd without A
// recording it (its answer lost on the way, or its request landing after
// the audit that followed; or a crash before the file was written) is
// given back by A's next Sync, or by the check of a restart, and host B
// may claim the address.
func TestLostClaimGivenBack(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.83.0.0/24")}
	ctx := context.Background()
	m := newMuffler(t, strings.TrimPrefix(e.URL, "etcd://"))
	a := newHost(t, "etcd://"+m.ln.Addr().String(), "hostA", "lost", cfg, 28)
	b := newHost(t, e.URL, "hostB", "lost", cfg, 28)
	if _, err := a.p.Allocate(ctx, "a0"); err != nil { // A has looked its network up
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		addr netip.Addr
		lose func(t *testing.T, addr netip.Addr) *Pool // returns A's pool afterwards
	}{
		{"answer lost", netip.MustParseAddr("10.83.0.200"), func(t *testing.T, addr netip.Addr) *Pool {
			m.setMute(true)
			_, err := a.p.Request(ctx, addr, "x")
			m.setMute(false)
			if !errors.Is(err, ErrUnreachable) || claimHolder(t, b.c, a.nw.ID, addr) != "hostA" {
				t.Fatalf("claim whose answer is lost: %v, etcd has it for %q; want ErrUnreachable, and hostA's claim", err, claimHolder(t, b.c, a.nw.ID, addr))
			}
			a.p.Sync(ctx)
			return a.p
		}},
		{"landed after the audit", netip.MustParseAddr("10.83.0.202"), func(t *testing.T, addr netip.Addr) *Pool {
			m.setMute(true)
			_, err := a.p.Request(ctx, addr, "x")
			m.setMute(false)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("claim whose answer is lost: %v; want ErrUnreachable", err)
			}
			key := claimKey(a.nw.ID, addr)
			if _, err := b.c.cli.Delete(ctx, key); err != nil { // it has not landed yet
				t.Fatal(err)
			}
			a.p.Sync(ctx) // its audit finds nothing; then the claim lands
			if _, err := b.c.cli.Put(ctx, key, "hostA"); err != nil {
				t.Fatal(err)
			}
			a.p.Sync(ctx)
			return a.p
		}},
		{"crash before the file", netip.MustParseAddr("10.83.0.201"), func(t *testing.T, addr netip.Addr) *Pool {
			if _, err := b.c.cli.Put(ctx, claimKey(a.nw.ID, addr), "hostA"); err != nil {
				t.Fatal(err)
			}
			s := &Space{c: a.c, nw: a.nw}
			p, err := a.c.OpenPool(a.nw, cfg, 28, a.file)
			if err == nil {
				s.pools = []*Pool{p}
				err = s.Verify(ctx) // what a start does (Client.verifyOnce)
			}
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.lose(t, tc.addr)
			if h := claimHolder(t, b.c, a.nw.ID, tc.addr); h != "" {
				t.Fatalf("etcd still has %s as %q's claim, which hostA does not know", tc.addr, h)
			}
			if _, ok := p.Owner(tc.addr); ok {
				t.Errorf("hostA holds %s", tc.addr)
			}
			if _, err := b.p.Request(ctx, tc.addr, "b"); err != nil {
				t.Errorf("hostB asks for %s: %v", tc.addr, err)
			}
		})
	}
}

// TestReleasedForeignClaimFreed: host B claims an address, then host A
// leases the block it is in (B's claim stays held there); once B has
// released it, A's next audit (Sync, due: never audited) frees it in A's
// block, where A may hand it out again.
func TestReleasedForeignClaimFreed(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.85.0.0/24")}
	ctx := context.Background()
	a := newHost(t, e.URL, "hostA", "fc", cfg, 28)
	b := newHost(t, e.URL, "hostB", "fc", cfg, 28)
	x := netip.MustParseAddr("10.85.0.20")
	if _, err := b.p.Request(ctx, x, "bx"); err != nil {
		t.Fatal(err)
	}
	for range 15 { // .0/28 (14 usable), then .16/28, which has x
		if _, err := a.p.Allocate(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if o, ok := a.p.Owner(x); !ok || o != foreignOwner("hostB") {
		t.Fatalf("hostA's block has %s as %q %v; want hostB's claim", x, o, ok)
	}
	b.p.Release(x)
	b.p.Sync(ctx)
	a.p.Sync(ctx) // never audited yet: due

	if o, ok := a.p.Owner(x); ok {
		t.Fatalf("hostB released %s; hostA still holds it for %q", x, o)
	}
	if _, err := a.p.Request(ctx, x, "ax"); err != nil {
		t.Errorf("hostA asks for %s, free in its block: %v", x, err)
	}
}
