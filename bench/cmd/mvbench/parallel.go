package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
)

// parallelClients is how many API clients attach at once.
const parallelClients = 8

// parallelAttach attaches N endpoints from 8 clients at once (each its own
// connection), checks in every namespace that the addresses and MACs on
// the links are all different, then detaches them the same way.
func (c *control) parallelAttach(ctx context.Context, e *env, a *agentProc) error {
	n := e.cfg.endpoints
	c.parallelN = n
	progress("control: %d attaches from %d clients at once (after %.1f s for the host to settle from the detaches)", n, parallelClients, settle(ctx).Seconds())
	d, err := inParallel(ctx, a, n, func(ctx context.Context, cl *api.Client, i int) error {
		_, err := cl.CreateEndpoint(ctx, api.EndpointCreate{Network: "bench", Name: e.endpointName("q", i)})
		return err
	})
	if err != nil {
		return fmt.Errorf("parallel attach: %w", err)
	}
	c.parallel = d
	if err := noDuplicates(e, n); err != nil {
		return err
	}
	progress("control: %d parallel attaches took %.2f s; %d distinct addresses and MACs on the links", n, d.Seconds(), n)
	if c.parallelDetach, err = inParallel(ctx, a, n, func(ctx context.Context, cl *api.Client, i int) error {
		return cl.RemoveEndpoint(ctx, e.endpointName("q", i), true)
	}); err != nil {
		return fmt.Errorf("parallel detach: %w", err)
	}
	return nil
}

// inParallel runs op for 0..n-1 from parallelClients goroutines, each with
// its own client, and returns the wall time; the first error stops all.
func inParallel(ctx context.Context, a *agentProc, n int, op func(context.Context, *api.Client, int) error) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, parallelClients)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range parallelClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := api.NewClient(a.socket)
			defer cl.Close()
			for i := w; i < n; i += parallelClients {
				if err := op(ctx, cl, i); err != nil {
					errc <- fmt.Errorf("endpoint %d: %w", i, err)
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(t0)
	close(errc)
	return d, <-errc
}

// noDuplicates reads eth0 in each endpoint's namespace (what a user would
// look at) and fails on a missing link, a link without an address, or an
// address or MAC that two endpoints share.
func noDuplicates(e *env, n int) error {
	addrs := map[netip.Addr]string{}
	macs := map[string]string{}
	for i := range n {
		name := e.endpointName("q", i)
		var ifi *net.Interface
		var got []net.Addr
		err := nstest.In(filepath.Join("/run/netns", name), func() error {
			var err error
			if ifi, err = net.InterfaceByName("eth0"); err != nil {
				return err
			}
			got, err = ifi.Addrs()
			return err
		})
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", name, err)
		}
		v4 := 0
		for _, ad := range got {
			p, err := netip.ParsePrefix(ad.String())
			if err != nil || !p.Addr().Is4() {
				continue
			}
			v4++
			if other, dup := addrs[p.Addr()]; dup {
				return fmt.Errorf("duplicate address %s on %s and %s", p.Addr(), other, name)
			}
			addrs[p.Addr()] = name
		}
		if v4 == 0 {
			return fmt.Errorf("endpoint %s: eth0 has no IPv4 address", name)
		}
		if other, dup := macs[ifi.HardwareAddr.String()]; dup {
			return fmt.Errorf("duplicate MAC %s on %s and %s", ifi.HardwareAddr, other, name)
		}
		macs[ifi.HardwareAddr.String()] = name
	}
	return nil
}
