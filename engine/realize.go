package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/netconf"
)

// realize and its parts: the kernel side of an attach (the namespace,
// made ahead and named once the record is on disk; the link and its
// datapath) and the record's commit that runs beside it.

// intend writes e's intent (writeIntent) before its link, unless mvlan
// makes its namespace; the intent's done removes it.
func (a *Engine) intend(e endpoint) (done func() error, err error) {
	if e.OwnsNetns {
		return func() error { return nil }, nil
	}
	return a.writeIntent(e)
}

// storeCreating stores e as "creating" in the background and returns
// what waits for that commit and says how it went: the kernel work
// (realize) runs meanwhile, its crash safety coming from the spare's
// having no name yet or from e's intent.
func (a *Engine) storeCreating(n *network, e endpoint) (wait func() error) {
	commit := func() error {
		crashpoint.Hit("endpoint-create:before-state")
		err := a.store.CreateEndpoint(e.api())
		if errors.Is(err, store.ErrExists) {
			return conflict(fmt.Errorf("endpoint name %s is already in use on network %s; choose another --name", e.Name, n.name()))
		}
		if err != nil {
			return fmt.Errorf("store endpoint %s: %w", e.Name, err)
		}
		crashpoint.Hit("endpoint-create:after-state")
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- commit() }()
	return sync.OnceValue(func() error { return <-done })
}

// realize makes the kernel objects: the namespace (if mvlan owns it) and
// the macvlan slave in it. A namespace mvlan makes is named (mounted at
// e's path) in the background once stored says e's record is on disk,
// while the link is made; realize returns once both are done. Caller
// holds e's busy lock.
func (a *Engine) realize(ctx context.Context, n *network, e *endpoint, stored func() error) (err error) {
	t0 := time.Now()
	var tSpare, tLink time.Duration
	defer func() {
		a.log.Debug("realize", "name", e.Name, "took", time.Since(t0), "spare", tSpare, "link", tLink)
	}()
	via := *e // e as the kernel work reaches it
	var sp SpareNetns
	if e.OwnsNetns {
		if sp, err = a.spareFor(e); err != nil {
			return err
		}
		defer sp.Close() // the namespace goes with it unless mounted
		via.Netns = sp.Path()
		tSpare = time.Since(t0)
	}
	nm := a.nameWhenStored(*e, sp, stored)
	defer func() {
		if sp == nil {
			return
		}
		r := recover() // a panic in makeLink: settle before sp closes
		if r != nil {
			err = fmt.Errorf("attach of %s interrupted: %v", e.Name, r)
		}
		err = a.settle(ctx, e, via, sp, nm, err)
		if r != nil {
			panic(r)
		}
	}()
	err = a.makeLink(ctx, n, e, &via, sp, nm.named)
	tLink = time.Since(t0)
	if err == nil {
		crashpoint.Hit("endpoint-create:after-link")
	}
	if sp == nil { // the announcements wait for the record
		nm.named <- err == nil && stored() == nil
	}
	return err
}

// naming is realize's background naming of a spare: done says how it
// went; failed tells it the link failed (the mount is then not made,
// unless already under way); named has the announcements wait for the
// name.
type naming struct {
	done   chan error
	failed atomic.Bool
	named  chan bool
}

// nameWhenStored marks sp as e's and binds it at e's path once stored
// says e's record is on disk, in the background. The mark lets a restart
// tell the namespace from one someone else made under the same name
// before its inode was stored; nothing sees it before the name. Without
// sp there is nothing to name: realize says when the announcements go.
func (a *Engine) nameWhenStored(e endpoint, sp SpareNetns, stored func() error) *naming {
	nm := &naming{done: make(chan error, 1), named: make(chan bool, 1)}
	if sp == nil {
		return nm
	}
	go func() {
		err := sp.Mark(a.alias("ns", e.ID))
		if serr := stored(); err == nil {
			err = serr
		}
		if err == nil && nm.failed.Load() {
			err = errLinkFailed
		}
		if err == nil {
			_, err = sp.Mount(e.Name)
		}
		if errors.Is(err, link.ErrExists) { // someone else's, made meanwhile
			err = conflict(fmt.Errorf("container name %s is already in use (%s exists); choose another --name", e.Name, e.Netns))
		}
		nm.done <- err
	}()
	return nm
}

// errLinkFailed is what the naming says when the link failed first.
var errLinkFailed = errors.New("the link failed")

// settle ends realize for a spare, err being how the link went: it
// waits for the naming and has the announcements go or not. When
// anything failed it takes the name, if made, and the rest down; a name
// that cannot be taken down is left to the undo (e owns it then).
func (a *Engine) settle(ctx context.Context, e *endpoint, via endpoint, sp SpareNetns, nm *naming, err error) error {
	if err != nil {
		nm.failed.Store(true)
	}
	nerr := <-nm.done
	if err == nil && nerr == nil {
		a.dp.NetnsNamed(e.NetnsCookie, e.Ifindex, e.Netns)
		crashpoint.Hit("endpoint-create:after-netns")
		nm.named <- true
		return nil
	}
	nm.named <- false
	err = cmp.Or(err, nerr)
	var stuck error
	if nerr == nil { // named, but the link failed: the name goes
		stuck = a.ns.Delete(e.Name)
	}
	err = errors.Join(err, stuck, a.dropUnnamed(context.WithoutCancel(ctx), e, via))
	if stuck != nil {
		e.OwnsNetns, e.NetnsInode = true, sp.Inode()
	}
	return err
}

// spareFor returns a new namespace for e, which mvlan makes, unless its
// name is taken; e gets its inode.
func (a *Engine) spareFor(e *endpoint) (SpareNetns, error) {
	if _, err := a.ns.Check(e.Netns); err == nil {
		e.OwnsNetns = false // someone else's: never delete it
		return nil, conflict(fmt.Errorf("container name %s is already in use (%s exists); choose another --name", e.Name, e.Netns))
	}
	sp, err := a.ns.Spare(e.Name)
	if err != nil {
		return nil, err
	}
	e.NetnsInode = sp.Inode()
	return sp, nil
}

// makeLink makes e's macvlan in its namespace, reached at via.Netns, with
// the datapath's entry and programs before it comes up: its first frames
// (the announcements) pass its programs and its peers'.
func (a *Engine) makeLink(ctx context.Context, n *network, e, via *endpoint, sp SpareNetns, named <-chan bool) error {
	var cookie uint64
	spec := a.endpointSpec(n, *via)
	spec.Announce = named
	if sp != nil {
		cookie, spec.IPv6Off = sp.Cookie(), sp.IPv6Off()
	}
	e.Unrouted = nil
	spec.RouteKept = func(gw netip.Addr) { e.Unrouted = append(e.Unrouted, gw) }
	spec.BeforeUp = func(idx int) error {
		err := a.attachEndpointAt(ctx, n, via, idx, cookie)
		e.NetnsCookie, e.Ifindex = via.NetnsCookie, via.Ifindex
		return err
	}
	crashpoint.Hit("endpoint-create:before-link")
	err := a.host.AttachEndpoint(ctx, spec)
	switch {
	case errors.Is(err, unix.EADDRINUSE) && e.macWait:
		return Busy(fmt.Errorf("MAC address %s is still on %s, the link's of the attachment this one replaces, whose namespace was gone (the kernel has not finished destroying it after %v, or something holds it); try again: %w",
			spec.MAC, spec.Parent, macGoingWait, err))
	case errors.Is(err, unix.EADDRINUSE): // macvlan_open: another link on the parent has the MAC
		return conflict(fmt.Errorf("MAC address %s is in use by another link on %s; choose another MAC address: %w",
			spec.MAC, spec.Parent, err))
	case errors.Is(err, link.ErrExists): // the interface name is taken in the namespace
		return conflict(err)
	}
	return err
}

// dropUnnamed takes down what realize made in a namespace that has no
// name (any more; the namespace goes with its file, once the kernel is
// done with it):
// our hold on its programs, the link, whose address must be nowhere once
// it is handed out again, and the table entry. e is left pointing at
// nothing, so that the undo after it chases no inode or ifindex another
// namespace may have by now.
func (a *Engine) dropUnnamed(ctx context.Context, e *endpoint, via endpoint) error {
	var errs []error
	if e.Ifindex != 0 {
		errs = append(errs, a.dp.DetachEndpoint(ctx, via.Netns, e.Ifindex),
			a.host.DetachEndpoint(ctx, via.Netns, e.IfName), a.dp.DeleteEndpoint(e.NetnsCookie, e.Ifindex))
	}
	e.NetnsInode, e.NetnsCookie, e.Ifindex, e.OwnsNetns = 0, 0, 0, false
	return errors.Join(errs...)
}

// macGoingWait bounds how long an attach waits for the parent to let go
// of its MAC when that was the link's of a namespace that is gone
// (endpoint.macWait): the kernel destroys one in the background, within
// a second unless the host is very busy.
const macGoingWait = 10 * time.Second

func (a *Engine) endpointSpec(n *network, e endpoint) link.EndpointSpec {
	s := link.EndpointSpec{Parent: n.Parent, Mode: n.Mode, NetnsPath: e.Netns, IfName: e.IfName,
		MAC: e.MAC, Addrs: e.Addrs, Alias: a.alias("ep", e.ID), AcceptRA: netconf.FirstHopOf(n.Options).AcceptRA, DHCP: n.DHCP, DHCP6: n.dhcp6(),
		WireOnly: e.unseen,
		Announced: func(err error) {
			switch {
			case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) || errors.Is(err, link.ErrNotFound):
				a.log.Debug("announce: the link is gone already", "name", e.Name, "err", err) // an rm at once
			case err != nil:
				a.log.Warn("announce the endpoint's addresses", "name", e.Name, "err", err)
			}
		}}
	s.ParentIndex, _ = n.indexes()
	if e.macWait {
		s.MACBusyWait = macGoingWait
	}
	if n.DHCP {
		s.Addrs = liveLeaseAddrs(e, time.Now())
	}
	if n.Internal {
		return s
	}
	if n.DHCP {
		if l := e.Lease; l != nil && slices.Contains(s.Addrs, l.Addr) && l.Router.IsValid() {
			s.Gateways = []netip.Addr{l.Router}
		}
		return s
	}
	seen := map[bool]bool{}
	for _, p := range e.Addrs {
		v6 := p.Addr().Is6()
		for _, pool := range n.Pools {
			if !seen[v6] && pool.Subnet.Contains(p.Addr()) && pool.Gateway.IsValid() {
				s.Gateways = append(s.Gateways, pool.Gateway)
				seen[v6] = true
			}
		}
	}
	return s
}
