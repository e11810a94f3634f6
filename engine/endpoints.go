package engine

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/dhcp"
	"github.com/mvlan/mvlan/internal/crashpoint"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/netconf"
)

// CreateEndpoint attaches a namespace (one mvlan makes, or req.Netns) to a
// network. Order for crash safety: the endpoint and its addresses are
// stored as "creating", the namespace and link are made, then the
// endpoint is marked ready; on start a "creating" endpoint is undone (or
// adopted, when its kernel side is whole). The link is made while the
// record commits, and nothing of it outlives a crash before the record is
// on disk: a namespace mvlan makes has no name (a link.Spare, gone with
// the process) until realize binds it at its path; a link in someone
// else's has an intent (engine/intent.go) that the next start undoes.
// The link's addresses are announced only once the record is on disk.
//
// Only the endpoint's own lock is held across the kernel work: attaches of
// different endpoints run in parallel, and readers never wait for them.
func (a *Engine) CreateEndpoint(ctx context.Context, req api.EndpointCreate) (_ api.Endpoint, err error) {
	n, err := a.lookup(req.Network)
	if err != nil {
		return api.Endpoint{}, err
	}
	en, err := a.prepareAndAdmit(ctx, n, req)
	if r, ok := isRepeat(err); ok {
		return a.answerRepeat(ctx, n, r)
	}
	if err != nil {
		return api.Endpoint{}, err
	}
	defer en.busy.Unlock()
	e := en.ep
	stored := a.storeCreating(n, e) // first: the commit is the longest part
	intent := func() error { return nil }
	finished := false
	defer func() {
		if err == nil && !finished {
			return // a panic: the intent stays for the next start
		}
		if err != nil {
			_ = stored() // undo after the record, which it deletes
			uerr := a.undoEndpoint(context.WithoutCancel(ctx), n, en, e)
			if err = errors.Join(err, uerr); uerr != nil {
				return // the intent stays for the next start
			}
		}
		if ierr := intent(); ierr != nil {
			// Harmless: a start drops it while the record is there, and
			// after a removal its undo finds nothing of e's.
			a.log.Warn("left behind", "name", e.Name, "err", ierr)
		}
	}()
	done, err := a.intend(e)
	if err != nil {
		return api.Endpoint{}, err
	}
	intent = done
	if err = a.realize(ctx, n, &e, stored); err != nil {
		return api.Endpoint{}, err
	}
	if err = stored(); err != nil {
		return api.Endpoint{}, err
	}
	if n.DHCP {
		if err = a.acquireLease(ctx, n, &e); err != nil {
			return api.Endpoint{}, err
		}
		defer func() {
			if err != nil {
				a.releaseLease(context.WithoutCancel(ctx), n, e)
			}
		}()
		crashpoint.Hit("endpoint-create:after-lease")
	}
	if n.dhcp6() {
		if err = a.acquireLease6(ctx, n, &e); err != nil {
			return api.Endpoint{}, err
		}
		defer func() {
			if err != nil {
				a.releaseLease6(context.WithoutCancel(ctx), n, e)
			}
		}()
		crashpoint.Hit("endpoint-create:after-lease6")
	}
	e.State = Ready
	if n.DHCP {
		// The lease must be on disk before it is used: a DHCP endpoint
		// found "creating" without one is not adopted (settleLease).
		if err = a.store.UpdateEndpoint(e.api()); err != nil {
			return api.Endpoint{}, fmt.Errorf("store endpoint %s: %w", e.Name, err)
		}
	} else {
		a.storeReadyLater(e)
	}
	n.mu.Lock()
	n.set(en, e)
	n.mu.Unlock()
	if n.DHCP {
		a.keep(n, en)
	}
	a.shimRoutesAdded(n, en)
	a.log.Info("endpoint attached", "name", e.Name, "network", n.name(), "netns", e.Netns, "addrs", e.Addrs, "mac", e.MAC.String())
	out := e.api()
	out.Network = n.name()
	finished = true
	return out, nil
}

// admit checks e against the network's endpoints, reserves its addresses
// and puts it in the index as "creating", with its lock held.
func (a *Engine) admit(n *network, e endpoint, req api.EndpointCreate) (*entry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.ok() {
		return nil, conflict(fmt.Errorf("network %s cannot take endpoints now: %s", n.name(), n.status))
	}
	if o := n.byCNI[cniKey(req.CNI)]; req.CNI != nil && o != nil {
		if o.ep.NetnsInode != e.NetnsInode {
			return nil, conflict(fmt.Errorf("container %s already has %s on network %s in another namespace (%s); DEL it first", req.CNI.ContainerID, req.CNI.IfName, n.name(), o.ep.Netns))
		}
		return nil, &repeatedAdd{o}
	}
	if o := n.byName[e.Name]; o != nil {
		return nil, conflict(fmt.Errorf("endpoint name %s is already in use on network %s; choose another --name", e.Name, n.name()))
	}
	if o := n.byMAC[string(e.MAC)]; o != nil && len(e.MAC) > 0 {
		return nil, conflict(fmt.Errorf("MAC %s is already used on network %s (endpoint %s)", e.MAC, n.name(), o.ep.Name))
	}
	// A namespace mvlan makes is new: only connect looks at the others'.
	if o := n.byNetns[e.NetnsInode]; !e.OwnsNetns && o != nil {
		return nil, conflict(fmt.Errorf("namespace %s is already on network %s (endpoint %s)", e.Netns, n.name(), o.ep.Name))
	}
	reserve := a.reserve
	if n.DHCP {
		reserve = func(n *network, _ *endpoint, req api.EndpointCreate) error { return reserveDHCP(n, req) }
	}
	if err := reserve(n, &e, req); err != nil {
		return nil, err
	}
	return n.add(e), nil
}

// newAndAdmit validates req and admits it to n. A clash (name, namespace,
// address) that may be with an endpoint whose removal is still finishing
// in the background is tried again once those removals are done, so that
// `mvlan rm -f c1 && mvlan run --name c1 --ip ...` works as it always did.
// An address picked by the network (no --ip, or no --ip6 on an IPv6
// network) is picked once the network's removals are done, so that
// `mvlan rm -f c1 && mvlan run -d` gets the address c1 had, if the lowest.
// A run whose container name is a pending removal's waits for it, so that
// `mvlan rm -f c1 && mvlan run -d --name c1 --net other` gets a namespace
// of its own.
func (a *Engine) newAndAdmit(ctx context.Context, n *network, req api.EndpointCreate) (endpoint, *entry, error) {
	if req.IP == "" || (n.IPv6 && req.IP6 == "") {
		a.removals.waitNetwork(ctx, n.ID)
	}
	if req.Netns == "" && req.Name != "" {
		// The name's namespace may still be a removal's (on any network).
		a.removals.waitNetns(ctx, link.NetnsPath(req.Name))
	}
	if req.Netns != "" {
		// A runtime's namespace whose endpoint a CNI DEL is still
		// removing (ReleaseEndpoints): its link may hold the name.
		a.removals.waitNetns(ctx, req.Netns)
	}
	for try := 0; ; try++ {
		e, err := a.newEndpoint(n, req)
		var en *entry
		if err == nil {
			en, err = a.admit(n, e, req)
		}
		if err == nil || try > 0 || KindOf(err) != KindConflict || !a.removals.wait(ctx) {
			return e, en, err
		}
	}
}

// prepareAndAdmit is newAndAdmit after the network's space is prepared
// for req (a cluster network's blocks: engine/cluster.go); a block used
// up by parallel attaches meanwhile is prepared for again, a few times.
func (a *Engine) prepareAndAdmit(ctx context.Context, n *network, req api.EndpointCreate) (*entry, error) {
	for try := 0; ; try++ {
		if err := a.prepare(ctx, n, req); err != nil {
			abandon(n, req)
			return nil, err
		}
		_, en, err := a.newAndAdmit(ctx, n, req)
		if err == nil {
			if err = a.dad(ctx, n, en, req); err == nil { // cluster networks: engine/dad.go
				return en, nil
			}
		}
		if _, ok := n.space.(preparer); !ok || try >= 3 || !(errors.Is(err, ipam.ErrExhausted) || errors.Is(err, errDADRetry)) {
			abandon(n, req)
			return nil, err
		}
	}
}

// newEndpoint validates the request into an endpoint without addresses.
func (a *Engine) newEndpoint(n *network, req api.EndpointCreate) (endpoint, error) {
	e := endpoint{ID: store.NewID(), Name: freeName(n, req), NetworkID: n.ID, Netns: req.Netns, IfName: req.IfName,
		State: Creating, Created: time.Now().UTC(), CNI: req.CNI}
	if e.IfName != "" {
		if err := link.CheckIfName(e.IfName); err != nil {
			return e, invalid(fmt.Errorf("--ifname: %w", err))
		}
	}
	if e.Name != "" {
		if err := checkName(e.Name); err != nil {
			return e, err
		}
	}
	if e.Netns != "" {
		if err := a.checkForeignNetns(&e); err != nil {
			return e, err
		}
	} else {
		e.OwnsNetns = true
		if e.Name == "" {
			e.Name = "mvlan-" + e.ID[:8]
		}
		e.Netns = link.NetnsPath(e.Name)
		if _, err := os.Lstat(e.Netns); err == nil {
			return e, conflict(fmt.Errorf("container name %s is already in use (%s exists); choose another --name", e.Name, e.Netns))
		}
	}
	if e.IfName == "" {
		e.IfName = "eth0"
	}
	if req.MAC == "" && n.Mode != "passthru" {
		n.mu.Lock()
		e.MAC = pickStableMAC(a.identity(n), e.Name, func(mac net.HardwareAddr) bool { return n.macTaken(mac, n.parentMAC) })
		n.mu.Unlock()
		return e, nil
	}
	mac, err := a.endpointMAC(n, req.MAC)
	if err != nil {
		return e, err
	}
	e.MAC = mac
	return e, nil
}

// checkName is the one check of an endpoint's name, however it gets one
// (run --name, connect --name, Docker's sandbox key or container name):
// a name is shown in ps, names /run/netns/NAME and is looked up by rm, so
// it is a plain word: no path, no newline, no space.
func checkName(name string) error {
	if err := netconf.CheckName("container", name); err != nil {
		return invalid(err)
	}
	return nil
}

// nameFromNetns names an endpoint after the namespace it was given.
func nameFromNetns(path string) string {
	if base := filepath.Base(path); strings.HasPrefix(path, link.NetnsDir+"/") && checkName(base) == nil {
		return base
	}
	f := strings.Split(strings.Trim(path, "/"), "/")
	if len(f) == 4 && f[0] == "proc" && f[2] == "ns" && checkName("pid-"+f[1]) == nil {
		return "pid-" + f[1]
	}
	return "ns-" + store.NewID()[:8]
}

// endpointMAC is the MAC of a new endpoint: the one asked for, else in
// passthru mode the parent's (passthru hands it to its one slave; keeping
// it means the parent's address does not change under the operator), else
// a random one. (An endpoint with a name gets a stable one instead: see
// stableMAC; Docker's endpoints are named only when they join.) A random one is not checked against the network's: 46
// random bits make a clash as good as impossible, and the kernel refuses a
// MAC already in use on the parent when the link comes up, so an attach
// could fail, never clash. A requested one is checked when the endpoint
// is admitted.
func (a *Engine) endpointMAC(n *network, want string) (net.HardwareAddr, error) {
	if want == "" && n.Mode == "passthru" {
		if l, err := a.host.Link(n.Parent); err == nil {
			want = l.MAC.String()
		}
	}
	if want == "" {
		mac := make(net.HardwareAddr, 6)
		for isZero(mac[1:]) {
			_, _ = rand.Read(mac)
			mac[0] = mac[0]&0xfc | 0x02 // locally administered, unicast
		}
		return mac, nil
	}
	mac, err := net.ParseMAC(want)
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 || isZero(mac) {
		return nil, invalid(fmt.Errorf("--mac %q is not a unicast Ethernet address; use e.g. 02:42:ac:10:56:0a", want))
	}
	return mac, nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// reserve takes the endpoint's addresses from the network's space.
// Caller holds n.mu.
func (a *Engine) reserve(n *network, e *endpoint, req api.EndpointCreate) (err error) {
	defer func() {
		if err != nil {
			releaseAll(n.space, e.Addrs)
			e.Addrs = nil
		}
	}()
	_, local := n.space.(*ipam.Space) // a cluster network's may be other hosts' too
	e.unseen = local
	for _, fam := range []struct {
		v6   bool
		want string
		flag string
	}{{false, req.IP, "--ip"}, {true, req.IP6, "--ip6"}} {
		p, err := reserveOne(n, e.Name, fam.v6, fam.want, fam.flag)
		if err != nil {
			return err
		}
		if p.IsValid() {
			e.Addrs = append(e.Addrs, p)
			e.unseen = e.unseen && fam.want == "" && n.used.Above(p.Addr())
		}
	}
	if len(e.Addrs) == 0 {
		return invalid(fmt.Errorf("network %s has no subnet to take an address from", n.name()))
	}
	return nil
}

func reserveOne(n *network, owner string, v6 bool, want, flag string) (netip.Prefix, error) {
	if want == "" {
		if !n.space.HasFamily(v6) || (v6 && !n.IPv6) {
			return netip.Prefix{}, nil
		}
		p, err := n.space.Allocate(v6, owner)
		if err != nil {
			return p, conflict(err)
		}
		return p, nil
	}
	addr, err := netip.ParseAddr(want)
	if err != nil || addr.Zone() != "" || addr.Unmap().Is6() != v6 {
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		return netip.Prefix{}, invalid(fmt.Errorf("%s %q is not an %s address", flag, want, fam))
	}
	p, err := n.space.Request(addr.Unmap(), owner)
	var taken *ipam.TakenError
	if errors.As(err, &taken) {
		return p, conflict(err)
	}
	if err != nil {
		return p, invalid(err)
	}
	return p, nil
}

func releaseAll(space addrSpace, addrs []netip.Prefix) {
	for _, p := range addrs {
		space.Release(p.Addr())
	}
}

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
	spec.BeforeUp = func(idx int) error {
		err := a.attachEndpointAt(ctx, n, via, idx, cookie)
		e.NetnsCookie, e.Ifindex = via.NetnsCookie, via.Ifindex
		return err
	}
	crashpoint.Hit("endpoint-create:before-link")
	err := a.host.AttachEndpoint(ctx, spec)
	if errors.Is(err, unix.EADDRINUSE) { // macvlan_open: another link on the parent has the MAC
		return conflict(fmt.Errorf("MAC address %s is in use by another link on %s; choose another MAC address: %w",
			spec.MAC, spec.Parent, err))
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
	if n.Internal {
		return s
	}
	if n.DHCP {
		if e.Lease != nil && e.Lease.State != dhcp.Expired && e.Lease.Router.IsValid() {
			s.Gateways = []netip.Addr{e.Lease.Router}
		}
		s.Addrs = liveLeaseAddrs(e)
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

// checkForeignNetns validates a namespace given by path (connect): it must
// be a network namespace and not the agent's own. (Admit checks it is not
// on the network yet.) It names the endpoint and picks the first free
// ethN when no --ifname.
func (a *Engine) checkForeignNetns(e *endpoint) error {
	ino, err := a.ns.Check(e.Netns)
	if err != nil {
		return invalid(err)
	}
	if ino == a.hostIno {
		return invalid(fmt.Errorf("%s is the agent's own (host) namespace; give a container's namespace", e.Netns))
	}
	e.NetnsInode = ino
	if e.Name == "" {
		e.Name = nameFromNetns(e.Netns)
	}
	if e.IfName == "" {
		e.IfName, err = a.freeIfName(e.Netns)
	}
	return err
}

// freeIfName returns the first ethN that the namespace does not have.
func (a *Engine) freeIfName(path string) (string, error) {
	links, err := a.ns.Links(path)
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, l := range links {
		taken[l.Name] = true
	}
	for i := 0; ; i++ {
		if name := fmt.Sprintf("eth%d", i); !taken[name] {
			return name, nil
		}
	}
}

// sortedByName sorts endpoints by name, then network, as ps shows them.
func sortedByName(eps []endpoint) []endpoint {
	slices.SortFunc(eps, func(x, y endpoint) int {
		return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.NetworkID, y.NetworkID))
	})
	return eps
}
