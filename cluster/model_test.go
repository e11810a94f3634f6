package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
)

// modelHost is one host of the model test: its pool, and whether it is
// cut off from etcd (its pool then runs on a client of a dead port).
type modelHost struct {
	id      string
	nw      Network
	live    *Client
	dead    *Client
	pool    *Pool
	file    string
	cut     bool
	addrSeq int
}

// TestBlockModel runs random interleavings of allocate, exact request,
// release, crash (reopen from the local file) and partition on three
// hosts of one small pool, against a reference that is a map of every
// address held and by which host. Invariants after every step: no
// address is held twice; a host cut off hands out only addresses of
// blocks it already held and fails with ErrUnreachable otherwise; a host
// that reaches etcd fails only when the pool is exhausted; what each host
// holds is what the reference says. Two fixed seeds and one from the clock;
// each is in its subtest's name.
func TestBlockModel(t *testing.T) {
	e := nstest.StartEtcd(t)
	for _, seed := range []uint64{1, 2, uint64(time.Now().UnixNano())} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, e.URL, seed, 300) })
	}
}

func runModel(t *testing.T, url string, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0))
	ref := map[netip.Addr]string{} // address -> host
	var hosts []*modelHost
	for i := range 3 {
		h := &modelHost{id: fmt.Sprint("h", i), file: fmt.Sprintf("%s/h%d.json", t.TempDir(), i)}
		var err error
		if h.live, err = Dial(Config{URL: url, Host: h.id, Timeout: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if h.dead, err = Dial(Config{URL: "etcd://127.0.0.1:1", Host: h.id, Timeout: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.live.Close(); h.dead.Close() })
		h.nw = joinNet(t, h.live, "net-"+t.Name())
		h.reopen(t, ref)
		hosts = append(hosts, h)
	}
	ctx := context.Background()
	for step := range steps {
		h := hosts[rng.IntN(len(hosts))]
		switch op := rng.IntN(10); {
		case op < 4:
			held := h.pool.Blocks()
			a, err := h.pool.Allocate(ctx, h.owner())
			switch {
			case err == nil && ref[a.Addr()] != "":
				t.Fatalf("step %d: %s handed %s, held by %s", step, h.id, a, ref[a.Addr()])
			case err == nil && h.cut && !contains(held, a.Addr()):
				t.Fatalf("step %d: %s cut off handed %s outside its blocks %v", step, h.id, a, held)
			case err == nil:
				ref[a.Addr()] = h.id
			case h.cut && !errors.Is(err, ErrUnreachable):
				t.Fatalf("step %d: %s cut off: %v, want ErrUnreachable", step, h.id, err)
			case !h.cut && !errors.Is(err, ipam.ErrExhausted):
				t.Fatalf("step %d: %s: %v", step, h.id, err)
			}
		case op < 5:
			a := netip.AddrFrom4([4]byte{10, 9, 0, byte(rng.IntN(64))})
			_, err := h.pool.Request(ctx, a, h.owner())
			switch {
			case err == nil && ref[a] != "":
				t.Fatalf("step %d: %s got %s, held by %s", step, h.id, a, ref[a])
			case err == nil:
				ref[a] = h.id
			case h.cut && ref[a] == "" && !errors.Is(err, ErrUnreachable) && !errors.Is(err, ipam.ErrReserved) && !errors.Is(err, ipam.ErrOutside):
				t.Fatalf("step %d: %s cut off asked for free %s: %v", step, h.id, a, err)
			}
		case op < 8:
			for a, o := range ref {
				if o == h.id {
					h.pool.Release(a)
					delete(ref, a)
					break
				}
			}
		case op < 9:
			h.reopen(t, ref) // crash and restart
		default:
			h.cut = !h.cut
			h.reopen(t, ref)
		}
	}
	for _, h := range hosts {
		got := map[netip.Addr]bool{}
		for _, x := range h.pool.Held() {
			got[x.Addr] = true
			if ref[x.Addr] != h.id {
				t.Errorf("%s holds %s, reference says %q", h.id, x.Addr, ref[x.Addr])
			}
		}
		for a, o := range ref {
			if o == h.id && !got[a] {
				t.Errorf("reference has %s on %s, the host does not hold it", a, h.id)
			}
		}
	}
	t.Logf("seed %d: %d addresses held at the end", seed, len(ref))
}

// reopen is a restart: the pool from its file, on the live or dead
// client, with the host's addresses loaded back from the reference.
func (h *modelHost) reopen(t *testing.T, ref map[netip.Addr]string) {
	c := h.live
	if h.cut {
		c = h.dead
	}
	p, err := c.OpenPool(h.nw, ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.9.0.0/26"),
		Aux: map[string]netip.Addr{"r": netip.MustParseAddr("10.9.0.40")}}, 29, h.file)
	if err != nil {
		t.Fatal(err)
	}
	var held []ipam.Held
	for a, o := range ref {
		if o == h.id {
			held = append(held, ipam.Held{Addr: a, Owner: "x"})
		}
	}
	if err := p.Load(held); err != nil {
		t.Fatal(err)
	}
	h.pool = p
}

func (h *modelHost) owner() string {
	h.addrSeq++
	return fmt.Sprint(h.id, "-", h.addrSeq)
}
