package loader

import (
	"errors"
)

// A namespace the agent makes comes from a pool of spares made ahead
// (link.NetnsPool), whose cookies are known before any attach. PrepareNetns
// loads a spare's two stubs then, in the pool's background, so that the
// first attach in it only pins them (endpointPrograms). Until an attach
// takes them they are held by this process alone and pinned nowhere: a
// crash leaves nothing of them.

// PrepareNetns loads the stubs of the namespace with this cookie ahead of
// its first attach. release closes them unless an attach took them: call
// it once the namespace is in use or given up. A stub that cannot be
// loaded now is loaded by the attach, as for any namespace.
func (d *Datapath) PrepareNetns(cookie uint64) (release func()) {
	ingress, err := d.buildStub("ep_ingress", cookie, slotIngress)
	if err != nil {
		return func() {}
	}
	egress, err := d.buildStub("ep_egress", cookie, slotEgress)
	if err != nil {
		ingress.Close()
		return func() {}
	}
	p := &epPrograms{ingress: ingress, egress: egress, users: map[int]bool{}}
	d.mu.Lock()
	defer d.mu.Unlock()
	_, taken := d.preloaded[cookie]
	if d.preloaded == nil || taken { // closed, or prepared twice
		_ = p.close()
		return func() {}
	}
	// Noted only now (ForeignPrograms may see them as foreign meanwhile:
	// one needless look at the endpoints, not loads under d.mu).
	d.ids.note(ingress)
	d.ids.note(egress)
	d.preloaded[cookie] = p
	return func() { d.dropPrepared(cookie, p) }
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
	d.ids.forget(p.ingress)
	d.ids.forget(p.egress)
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
	return 2 * len(d.preloaded)
}
