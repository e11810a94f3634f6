package loader

// Taking programs off links: detaching them from a live link, forgetting
// the hooks of a link that is gone or of a namespace that is gone.

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// DetachEndpoint removes what AttachEndpoint attached (in either mode) and
// nothing else. A netns or link that is already gone is not an error.
func (d *Datapath) DetachEndpoint(ctx context.Context, netnsPath string, ifindex int) error {
	return d.detachLink(ctx, netnsPath, ifindex, true)
}

// ForgetEndpoint is DetachEndpoint for a link its caller has deleted:
// the kernel took the link's hooks (clsact qdisc, filters, TCX entries)
// with it, so nothing is asked of the kernel; what remains are our
// records of them, our TCX link pins and our hold on the endpoint's
// programs. Cheaper than detaching first: no namespace is entered and no
// qdisc deleted (a qdisc's deletion costs as much again when the link
// goes). A TCX link still on a live device (its caller could not find
// the link to delete it) keeps its pin and record: its programs stay on
// it, and without its row they drop every frame.
func (d *Datapath) ForgetEndpoint(cookie uint64, ifindex int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := target{cookie: cookie, ifindex: ifindex}
	var errs []error
	for _, hook := range []Hook{Ingress, Egress} {
		k := attachKey{cookie, ifindex, hook}
		gone, err := d.forgetTCX(t, hook)
		if gone && err == nil {
			d.attached.del(k)
		} else {
			d.linger(k) // a live device, or a pin to try again
		}
		errs = append(errs, err)
	}
	d.unmarkQdisc(ifaceKey{cookie, ifindex})
	errs = append(errs, d.releaseEndpointPrograms(cookie, ifindex))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("forget ifindex %d of namespace %d: %w", ifindex, cookie, err)
	}
	return nil
}

// linger notes a TCX pin ForgetEndpoint kept, for ForgetLingering.
// Caller holds mu.
func (d *Datapath) linger(k attachKey) {
	if d.lingering == nil {
		d.lingering = map[attachKey]bool{}
	}
	d.lingering[k] = true
	d.lingers.Store(int32(len(d.lingering)))
}

// unlinger drops k from the lingering pins. Caller holds mu.
func (d *Datapath) unlinger(k attachKey) {
	delete(d.lingering, k)
	d.lingers.Store(int32(len(d.lingering)))
}

// ForgetLingering forgets the TCX pins (and records) ForgetEndpoint kept
// whose device is gone by now (a namespace the kernel was still
// destroying, say), and tries again those it failed to unpin. A pin on a
// live device stays until it goes. It returns how many it forgot; when
// there are none it costs an atomic load (no lock: the sweep calls it).
func (d *Datapath) ForgetLingering() (int, error) {
	if d.lingers.Load() == 0 {
		return 0, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	var errs []error
	for k := range d.lingering {
		gone, err := d.forgetTCX(target{cookie: k.cookie, ifindex: k.ifindex}, k.hook)
		if err != nil {
			errs = append(errs, err)
		}
		if gone && err == nil {
			d.attached.del(k)
			d.unlinger(k)
			n++
		}
	}
	return n, errors.Join(errs...)
}

// DetachParent removes what AttachParent attached (in either mode) and
// nothing else. A link that is already gone is not an error.
func (d *Datapath) DetachParent(ctx context.Context, netnsPath string, ifindex int) error {
	return d.detachLink(ctx, netnsPath, ifindex, false)
}

func (d *Datapath) detachLink(ctx context.Context, netnsPath string, ifindex int, endpoint bool) error {
	t, err := newTarget(netnsPath, ifindex)
	if errors.Is(err, unix.ENOENT) {
		return d.forgetGoneNetns(netnsPath, ifindex, endpoint)
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, hook := range []Hook{Ingress, Egress} {
		errs = append(errs, d.detachTCX(t, hook), d.detachTC(ctx, t, hook))
		d.attached.del(attachKey{t.cookie, t.ifindex, hook})
	}
	errs = append(errs, d.dropQdiscIfOurs(ctx, t))
	if endpoint {
		errs = append(errs, d.releaseEndpointPrograms(t.cookie, ifindex))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detach from ifindex %d (%s): %w", ifindex, nsName(netnsPath), err)
	}
	return nil
}

// forgetGoneNetns cleans up after a netns that no longer exists: the kernel
// removed its links, and their programs, filters and qdiscs, with it; what
// remains are our pins and records.
func (d *Datapath) forgetGoneNetns(netnsPath string, ifindex int, endpoint bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for k, a := range d.attached.m {
		if a.Netns != netnsPath || a.Ifindex != ifindex {
			continue
		}
		d.attached.del(k)
		d.unmarkQdisc(ifaceKey{k.cookie, k.ifindex})
		errs = append(errs, d.detachTCX(target{cookie: k.cookie, ifindex: ifindex}, k.hook))
		if endpoint {
			errs = append(errs, d.releaseEndpointPrograms(k.cookie, ifindex))
		}
	}
	_, err := d.pruneLinksLocked()
	return errors.Join(append(errs, err)...)
}
