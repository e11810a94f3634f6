package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/crashpoint"
)

// What a runtime front end (CNI) asks of the engine by its own identity
// of an attachment, each an index look-up, never a walk of the network's
// endpoints: a repeated ADD answered with the endpoint it made, an ADD
// from a new namespace replacing the endpoint of the old one, a name
// picked from the runtime's candidates, DEL and CHECK finding the
// endpoint by container ID and interface.

// repeatedAdd is admit's answer to a request whose CNI identity has an
// endpoint on the network already; answerRepeat tells whether it is in
// the request's namespace.
type repeatedAdd struct{ en *entry }

func (r *repeatedAdd) Error() string { return "repeated attach of " + r.en.ep.Name }

// staleAttachment is answerRepeat's answer when the endpoint of the
// identity is in another namespace than the attach's: the runtime made
// the sandbox again and the DEL of the old one never came (it crashed,
// or lost it). gone: its path does not name its namespace any more; the
// removal may not reach its link, which goes with the namespace, in the
// background, once the kernel destroys it.
type staleAttachment struct {
	en   *entry
	ep   endpoint
	gone bool
}

func (s *staleAttachment) Error() string { return "stale attachment " + s.ep.Name }

// cniEntry is the endpoint of n a runtime attached with identity at, if
// any.
func (n *network) cniEntry(at *api.CNIAttachment) *entry {
	if at == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byCNI[*at]
}

func cniKey(at *api.CNIAttachment) api.CNIAttachment {
	if at == nil {
		return api.CNIAttachment{}
	}
	return *at
}

// freeName is req.Name, or the first of req.AltNames no endpoint of n
// has when it is taken ("" if all are: named after its namespace). A
// clash meanwhile (a parallel attach admitted with that name) is
// admit's to report, and newAdmitted's to pick again after.
func freeName(n *network, req api.EndpointCreate) string {
	if len(req.AltNames) == 0 {
		return req.Name
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, name := range append([]string{req.Name}, req.AltNames...) {
		if name != "" && checkName(name) == nil && n.byName[name] == nil {
			return name
		}
	}
	return ""
}

// nameInUse is admit's error of a name another endpoint of the network
// has.
type nameInUse struct{ name, network string }

func (e *nameInUse) Error() string {
	return fmt.Sprintf("endpoint name %s is already in use on network %s; choose another --name", e.name, e.network)
}

// newAdmitted makes req into an endpoint and admits it to n. A name
// picked from the runtime's candidates that a parallel attach took
// between the pick and the admission is picked again (with the MAC made
// from it): each try is after another candidate was taken, so there are
// at most as many as candidates.
func (a *Engine) newAdmitted(n *network, req api.EndpointCreate) (endpoint, *entry, error) {
	for try := 0; ; try++ {
		e, err := a.newEndpoint(n, req)
		if err != nil {
			return e, nil, err
		}
		crashpoint.Hit("endpoint-create:before-admit")
		en, err := a.admit(n, e, req)
		var clash *nameInUse
		if !errors.As(err, &clash) || try >= len(req.AltNames) {
			return e, en, err
		}
	}
}

// errRepeatGone: the endpoint a repeated attach named was removed (or its
// creation undone) while the attach waited for it; the attach may start
// afresh.
var errRepeatGone = errors.New("repeated attach: endpoint gone")

// answerRepeat returns endpoint en, which an attach with its CNI identity
// asks for again, once its creation (if still under way) is over;
// errRepeatGone if it was removed meanwhile, a *staleAttachment if it is
// not in req's namespace. It is when the namespace at req.Netns has its
// inode and its own path still does: the kernel gives the inode number of
// a namespace that is gone to the next one made, so a runtime's new
// namespace (at another path) may have the number of the old one, whose
// path is gone.
func (a *Engine) answerRepeat(ctx context.Context, n *network, en *entry, req api.EndpointCreate) (api.Endpoint, error) {
	var ino uint64
	if req.Netns != "" {
		var err error
		if ino, err = a.foreignNetnsInode(req.Netns, req.NetnsInode); err != nil {
			return api.Endpoint{}, err // before anything is released for it
		}
	}
	en.busy.Lock()
	e, ok := n.current(en)
	en.busy.Unlock()
	if !ok {
		return api.Endpoint{}, errRepeatGone
	}
	if alive := a.netnsSame(e); ino == 0 || e.NetnsInode != ino || !alive {
		return api.Endpoint{}, &staleAttachment{en, e, !alive}
	}
	if e.State != Ready {
		// Its creation or removal is over (the lock is free) and failed
		// half way: nothing is under way to wait for.
		verb := "made"
		if e.State == Removing {
			verb = "removed"
		}
		return api.Endpoint{}, conflict(fmt.Errorf("endpoint %s of the same attachment could not be %s (the agent log says why; its next start finishes it): remove it (CNI DEL, or mvlan rm -f %s/%s)", e.Name, verb, n.name(), e.Name))
	}
	if d := repeatDiffers(e, req); d != "" {
		return api.Endpoint{}, conflict(fmt.Errorf("container %s (%s) is attached to network %s already, as endpoint %s, without the %s this ADD asks for: DEL the attachment first",
			req.CNI.ContainerID, req.CNI.IfName, n.name(), e.Name, d))
	}
	out := e.api()
	out.Network = n.name()
	return out, ctx.Err()
}

// repeatDiffers says what of the addresses and MAC req asks for endpoint
// e has not ("" when it has them all): a repeated ADD that asks for others
// is not the same request, and answering it with e would tell the runtime
// it got what it asked for.
func repeatDiffers(e endpoint, req api.EndpointCreate) string {
	var d []string
	for _, want := range []string{req.IP, req.IP6} {
		if want == "" {
			continue
		}
		a, err := netip.ParseAddr(want)
		if err != nil || !slices.ContainsFunc(e.Addrs, func(p netip.Prefix) bool { return p.Addr() == a.Unmap() }) {
			d = append(d, "address "+want)
		}
	}
	if req.MAC != "" {
		if m, err := net.ParseMAC(req.MAC); err != nil || !bytes.Equal(m, e.MAC) {
			d = append(d, "MAC "+req.MAC)
		}
	}
	return strings.Join(d, " and ")
}

// replaceStale releases the endpoint of a runtime's attachment that an
// ADD from another namespace (netns) replaces, whole, before the ADD goes
// on, as a disconnect does: its link goes from its namespace (if that is
// still there), then its record, and only then are its name, MAC and
// addresses free, which the new attach may ask for again. One removed
// meanwhile (a DEL, the sweep) is not an error.
func (a *Engine) replaceStale(ctx context.Context, n *network, s *staleAttachment, netns string) error {
	at := cniKey(s.ep.CNI)
	a.log.Info("replacing an attachment: ADD from another namespace without a DEL", "name", s.ep.Name,
		"container", at.ContainerID, "ifname", at.IfName, "old_netns", s.ep.Netns, "netns", netns)
	if err := a.removeEndpoint(context.WithoutCancel(ctx), n, s.en, false); err != nil {
		return fmt.Errorf("release the attachment of container %s (%s) in %s, which an ADD from %s replaces (the agent log says why; an ADD or DEL tries again): %w",
			at.ContainerID, at.IfName, s.ep.Netns, netns, err)
	}
	return nil
}

// CNIEndpoint returns the endpoint of network ref (by name or full ID, as
// CNINetwork) that a CNI runtime made with identity at.
func (a *Engine) CNIEndpoint(ref string, at api.CNIAttachment) (api.Endpoint, error) {
	n, err := a.lookupExact(ref)
	if err != nil {
		return api.Endpoint{}, err
	}
	n.mu.Lock()
	en := n.byCNI[at]
	var e endpoint
	if en != nil {
		e = en.ep
	}
	n.mu.Unlock()
	if en == nil {
		return api.Endpoint{}, notFound(fmt.Errorf("network %s has no attachment of container %s (%s) from CNI network %s", n.name(), at.ContainerID, at.IfName, at.Network))
	}
	out := e.api()
	out.Network = n.name()
	return out, nil
}

// CNIEndpointIn is CNIEndpoint for a runtime's request from the
// namespace at netns (its CNI_NETNS; "" tells nothing): an endpoint of
// the identity in another namespace is not the request's, and is not
// found. That is an attachment that replaced the one of netns (an ADD
// from a new namespace, whose DEL for the old one came late or again).
// The endpoint's namespace is netns when its path is netns or netns names
// it (the same inode); a path that names nothing (gone) is not it either:
// the sweep releases an endpoint whose namespace went. Nor is it when the
// namespace at netns where the request was made, seen (0: not known), is
// another (a runtime that sees other mounts or PIDs, or a sandbox made
// again at the path).
func (a *Engine) CNIEndpointIn(ref string, at api.CNIAttachment, netns string, seen uint64) (api.Endpoint, error) {
	e, err := a.CNIEndpoint(ref, at)
	if err != nil || netns == "" {
		return e, err
	}
	if seen != 0 && e.NetnsInode != 0 && seen != e.NetnsInode {
		return api.Endpoint{}, notFound(fmt.Errorf("the attachment of container %s (%s) on network %s is in net:[%d], not in %s (net:[%d] where the request was made)",
			at.ContainerID, at.IfName, e.Network, e.NetnsInode, netns, seen))
	}
	if netns == e.Netns {
		return e, nil
	}
	if ino, err := a.ns.Check(netns); err == nil && ino == e.NetnsInode {
		return e, nil
	}
	return api.Endpoint{}, notFound(fmt.Errorf("the attachment of container %s (%s) on network %s is in %s, not %s (an ADD from there replaced the one of %s)",
		at.ContainerID, at.IfName, e.Network, e.Netns, netns, netns))
}

// NetworkBrief is Network without its endpoints: what a front end needs
// to describe an attachment, the same size whatever the network holds.
func (a *Engine) NetworkBrief(ref string) (api.Network, error) {
	n, err := a.lookup(ref)
	if err != nil {
		return api.Network{}, err
	}
	return a.view(n, false), nil
}

// CNINetwork is NetworkBrief of network ref as a CNI configuration names
// it: by name or full ID, never by an ID prefix.
func (a *Engine) CNINetwork(ref string) (api.Network, error) {
	n, err := a.lookupExact(ref)
	if err != nil {
		return api.Network{}, err
	}
	return a.view(n, false), nil
}

// isRepeat unwraps admit's repeatedAdd.
func isRepeat(err error) (*repeatedAdd, bool) {
	var r *repeatedAdd
	return r, errors.As(err, &r)
}
