package loader

import (
	"errors"
	"os"

	"github.com/vishvananda/netns"

	"github.com/mvlan/mvlan/nsthread"
)

// A namespace the agent makes comes from a pool of spares made ahead
// (link.NetnsPool), whose cookies are known before any attach. PrepareNetns
// loads a spare's two stubs then, in the pool's background, and opens an
// rtnetlink socket in it, so that the first attach in it only pins them
// (endpointPrograms) and does not enter the namespace for its tc requests
// (createTCHooks); under PathDirect there are no stubs, only the socket.
// Until an attach takes them they are held by this process alone and
// pinned nowhere: a crash leaves nothing of them.

// PrepareNetns prepares the first attach in the namespace ns (an open
// file of it, only used during the call) with this cookie. release closes
// what it prepared unless an attach took it: call it once the namespace is
// in use or given up. What cannot be prepared now the attach does itself,
// as for any namespace.
func (d *Datapath) PrepareNetns(ns *os.File, cookie uint64) (release func()) {
	if d.direct { // no stubs: only the socket (endpointPrograms takes it)
		return d.prepare(cookie, &epPrograms{shared: true, rtnl: socketIn(ns)})
	}
	ingress, err := d.buildStub("ep_ingress", cookie, slotIngress)
	if err != nil {
		return func() {}
	}
	egress, err := d.buildStub("ep_egress", cookie, slotEgress)
	if err != nil {
		ingress.Close()
		return func() {}
	}
	return d.prepare(cookie, &epPrograms{ingress: ingress, egress: egress, rtnl: socketIn(ns)})
}

// prepare keeps p, prepared for the namespace with this cookie, for its
// first attach.
func (d *Datapath) prepare(cookie uint64, p *epPrograms) (release func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, taken := d.preloaded[cookie]
	if d.preloaded == nil || taken { // closed, or prepared twice
		_ = p.close()
		return func() {}
	}
	p.users = map[int]Mode{}
	if !p.shared {
		// Noted only now (ForeignPrograms may see them as foreign
		// meanwhile: one needless look at the endpoints, not loads
		// under d.mu).
		d.ids.note(p.ingress)
		d.ids.note(p.egress)
	}
	d.preloaded[cookie] = p
	return func() { d.dropPrepared(cookie, p) }
}

// socketIn opens an rtnetlink socket in the namespace ns; nil if it cannot.
func socketIn(ns *os.File) *os.File {
	var fd int
	err := nsthread.Do(netns.NsHandle(ns.Fd()), func() (err error) {
		fd, err = rtnetlinkSocket()
		return err
	})
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "rtnetlink")
}

// dropPrepared closes p, cookie's prepared stubs, unless an attach took
// them (or Close closed them).
func (d *Datapath) dropPrepared(cookie uint64, p *epPrograms) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.preloaded[cookie] != p {
		return
	}
	delete(d.preloaded, cookie)
	if !p.shared {
		d.ids.forget(p.ingress)
		d.ids.forget(p.egress)
	}
	_ = p.close()
}

// takePrepared returns cookie's prepared stubs, pinned, for its first
// attach; ok false if there are none. The caller holds d.mu.
func (d *Datapath) takePrepared(cookie uint64) (_ *epPrograms, ok bool, err error) {
	p, ok := d.preloaded[cookie]
	if !ok {
		return nil, false, nil
	}
	delete(d.preloaded, cookie)
	if err := d.pinStubs(cookie, p.ingress, p.egress); err != nil {
		d.ids.forget(p.ingress)
		d.ids.forget(p.egress)
		return nil, true, errors.Join(err, p.close())
	}
	return p, true, nil
}

// closePrepared closes the stubs no attach took (Close). The caller holds
// d.mu.
func (d *Datapath) closePrepared() error {
	var errs []error
	for cookie, p := range d.preloaded {
		errs = append(errs, p.close())
		delete(d.preloaded, cookie)
	}
	d.preloaded = nil
	return errors.Join(errs...)
}

// preparedPrograms is how many stub programs are prepared and not taken
// (tests).
func (d *Datapath) preparedPrograms() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, p := range d.preloaded {
		if !p.shared {
			n += 2
		}
	}
	return n
}

// preparedSockets is how many namespaces have a socket prepared (tests).
func (d *Datapath) preparedSockets() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, p := range d.preloaded {
		if p.rtnl != nil {
			n++
		}
	}
	return n
}
