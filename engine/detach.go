package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/link"
)

// undoEndpoint removes whatever part of e exists in the kernel, then its
// record, then takes it out of the index and releases its addresses.
// Caller holds en.busy. An endpoint whose network is not in the state has
// no n and no en. The record goes with the next commit (it costs no sync
// of its own): the next change that could take e's name or addresses
// commits after it, and a crash before it leaves a record whose kernel
// objects are gone, which the next start forgets.
func (a *Engine) undoEndpoint(ctx context.Context, n *network, en *entry, e endpoint) error {
	// The link (its programs go with it), our records of its programs,
	// then the table entry: a link is never live without its entry
	// (forgetEntry).
	linkGone, err := a.teardown(ctx, e)
	if linkGone {
		// Even when the namespace's name could not go: the next try
		// (the next start) finds no pins or records of a gone link.
		err = errors.Join(err, a.forgetPrograms(ctx, e))
	}
	if err == nil {
		err = a.forgetEntry(e)
	}
	if err != nil {
		return err // keep the record so that the next try finds it
	}
	a.store.DeleteEndpointLater(e.ID)
	if n == nil {
		return nil
	}
	n.mu.Lock()
	n.drop(en)
	n.mu.Unlock()
	a.shimRoutesRemoved(n, en)
	return nil
}

// teardown deletes e's link (found by ownLink, never by name alone) and
// the namespace mvlan made for it. Missing pieces are not errors.
// linkGone says the link's part went well (deleted, or not found), however
// the namespace's went.
func (a *Engine) teardown(ctx context.Context, e endpoint) (linkGone bool, err error) {
	if err := removeResolv(e); err != nil {
		a.log.Warn("left behind", "name", e.Name, "err", err)
	}
	var nameErr error
	if !a.isOurNetns(e) {
		// The path is gone, is not a namespace, or names another one now.
		// Ours may live on through its processes, with the link and our
		// address in it: remove the link through one of them before the
		// address is handed out again. Unless the other one has our
		// inode: then ours is destroyed (the kernel gave its number
		// again), its link with it, and the processes of that inode are
		// the other one's.
		if !a.netnsAlive(e) {
			err = a.detachThroughPids(ctx, e)
		}
		if handoffUnfinished(e) {
			// A hand-off undone or removed before it finished: its link
			// is where Join made it, the agent's namespace, or the
			// runtime has moved it into the sandbox already; looked for
			// in that order (the one it moves in), so that a move in
			// between cannot hide it. Found by its alias only (unique
			// to e), nothing else touched.
			host := e
			host.Netns = a.hostPath()
			err = errors.Join(err, a.detachByAlias(ctx, host))
			if a.netnsNamed(e) {
				err = errors.Join(err, a.detachByAlias(ctx, e))
			}
		}
		// A crash between the mount and the bind (create) or between the
		// unmount and the unlink (rm) leaves an empty file by its name.
		if e.OwnsNetns && e.State != Ready && halfMadeNetns(e.Netns) {
			nameErr = a.ns.Delete(e.Name)
		}
	} else {
		err = a.detachLink(ctx, e)
		// Reached through /proc/self/fd (a background removal), the name
		// was taken away before rm answered and may be a new container's now.
		if e.OwnsNetns && e.Netns == link.NetnsPath(e.Name) {
			nameErr = a.ns.Delete(e.Name)
		}
	}
	return err == nil, errors.Join(err, nameErr)
}

// handoffUnfinished: e is a hand-off the agent never saw in its sandbox
// (no interface name, no inode), in whatever state (creating, or
// removing since). Endpoints of run, connect and CNI always have an
// interface name.
func handoffUnfinished(e endpoint) bool {
	return !e.OwnsNetns && e.IfName == "" && e.NetnsInode == 0
}

// detachByAlias deletes the link with e's alias in e's namespace, if any.
func (a *Engine) detachByAlias(ctx context.Context, e endpoint) error {
	via := e
	via.Ifindex = 0 // by the alias, not by an index of another namespace
	l, ok, err := a.endpointLink(via)
	if err != nil || !ok {
		return err
	}
	return a.host.DetachLink(ctx, e.Netns, l.Index)
}

// netnsNamed reports whether e's path names a namespace (any).
func (a *Engine) netnsNamed(e endpoint) bool {
	_, err := a.ns.Check(e.Netns)
	return err == nil
}

// isOurNetns reports whether e's path is still e's namespace: the same
// inode and cookie (netnsSame), or, for one created before its inode was
// stored, our mark.
func (a *Engine) isOurNetns(e endpoint) bool {
	switch {
	case e.NetnsInode != 0:
		return a.netnsSame(e)
	case !e.OwnsNetns:
		return false
	}
	if _, err := a.ns.Check(e.Netns); err != nil {
		return false
	}
	mark, err := a.ns.Mark(e.Netns)
	return err == nil && mark == a.alias("ns", e.ID)
}

// halfMadeNetns: naming a namespace (CreateNetns, Spare.Mount) makes or
// links an empty file, then mounts the namespace on it; a crash between
// leaves the empty file. A namespace mounted there (someone else's, named
// after the crash) reads as an empty regular file too, and is not one.
func halfMadeNetns(path string) bool {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() || st.Size() != 0 {
		return false
	}
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type != unix.NSFS_MAGIC
}

func (a *Engine) detachThroughPids(ctx context.Context, e endpoint) error {
	for _, pid := range netnsPids(e.NetnsInode) {
		via := e
		via.Netns = fmt.Sprintf("/proc/%d/ns/net", pid)
		// By our alias only: inode numbers are given again, and a
		// namespace with e's old one holds some other ifindex e had.
		via.Ifindex = 0
		if ino, err := a.ns.Check(via.Netns); err != nil || ino != e.NetnsInode {
			continue // the process moved or exited meanwhile
		}
		return a.detachLink(ctx, via)
	}
	return nil
}

func (a *Engine) detachLink(ctx context.Context, e endpoint) error {
	l, ok, err := a.endpointLink(e)
	if err != nil {
		return fmt.Errorf("detach %s: %w", e.Name, err)
	}
	if ok { // by its index: a name could be another link's by the time it is deleted
		return a.host.DetachLink(ctx, e.Netns, l.Index)
	}
	// Not found by its mark: a crash may have caught it before the mark
	// was set (link.Host.DeleteHalfMade).
	return a.host.DeleteHalfMade(e.Netns, e.IfName, e.MAC)
}

// endpointLink is e's link in e.Netns (ownLink: by its stored ifindex,
// else our alias); ok is false if there is none (or no such namespace).
func (a *Engine) endpointLink(e endpoint) (l link.Info, ok bool, err error) {
	l, ok, err = a.ownLink(e)
	if errors.Is(err, link.ErrNotFound) {
		return link.Info{}, false, nil
	}
	return l, ok && err == nil, err
}

// hit is an endpoint found by reference, with where it lives.
type hit struct {
	n  *network
	en *entry
	ep endpoint
}

// RemoveEndpoints removes what ref names (see matchEndpoints): one
// endpoint, or the endpoints of one container. Without force, a namespace mvlan made that still has
// processes is refused, as `docker rm` refuses a running container.
func (a *Engine) RemoveEndpoints(ctx context.Context, ref string, force bool) error {
	return a.removeEndpoints(ctx, ref, force, false)
}

// ReleaseEndpoints is RemoveEndpoints with force for a runtime that
// deletes the namespace next (CNI DEL): an endpoint in a namespace mvlan
// did not make is removed in the background too, once unreachable, as
// one in a namespace mvlan made always is. An attach to the same
// namespace path waits for it.
func (a *Engine) ReleaseEndpoints(ctx context.Context, ref string) error {
	return a.removeEndpoints(ctx, ref, true, true)
}

func (a *Engine) removeEndpoints(ctx context.Context, ref string, force, foreignInBackground bool) error {
	hits, err := a.matchEndpoints(ref)
	if err != nil {
		return err
	}
	if !force {
		for _, h := range hits {
			if pids := netnsPids(h.ep.NetnsInode); h.ep.OwnsNetns && len(pids) > 0 {
				return conflict(fmt.Errorf("container %s is running (processes %v in its namespace); stop them or use rm -f", h.ep.Name, pids))
			}
		}
	}
	// A container's endpoints in its namespace that mvlan did not make
	// (connect) go first, while it still has its name: the one mvlan made
	// takes the name away as it starts (silence), and the others' links
	// would then be out of reach, left to the kernel's destruction of the
	// namespace with their addresses given out again meanwhile.
	slices.SortStableFunc(hits, func(x, y hit) int { return cmp.Compare(b2i(x.ep.OwnsNetns), b2i(y.ep.OwnsNetns)) })
	var errs []error
	for _, h := range hits {
		errs = append(errs, a.removeEndpoint(ctx, h.n, h.en, foreignInBackground))
	}
	return errors.Join(errs...)
}

// Disconnect removes the endpoint of network netRef in the namespace at
// path; seen, unless 0, is its inode where the request was made.
func (a *Engine) Disconnect(ctx context.Context, netRef, path string, seen uint64) error {
	n, err := a.lookup(netRef)
	if err != nil {
		return err
	}
	// A path that is gone may still name a stored endpoint; one that
	// names something else than a namespace never does.
	ino, err := a.ns.Check(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return invalid(err)
	}
	if err = otherNetns(path, ino, seen); err != nil {
		return err
	}
	n.mu.Lock()
	var found *entry
	best := 0
	for _, en := range n.eps {
		if ino == 0 && seen != 0 && en.ep.NetnsInode != seen {
			continue // the path is gone here; the requester's namespace is another
		}
		if m := disconnectMatch(en.ep, path, ino); m > best {
			found, best = en, m
		}
	}
	var e endpoint
	if found != nil {
		e = found.ep
	}
	n.mu.Unlock()
	switch {
	case found == nil:
		return notFound(fmt.Errorf("namespace %s is not connected to network %s", path, n.name()))
	case e.OwnsNetns:
		return invalid(fmt.Errorf("%s is container %s, made by mvlan run; remove it with mvlan rm %s (disconnect is for namespaces made by others)", path, e.Name, e.Name))
	}
	return a.removeEndpoint(ctx, n, found, false)
}

// disconnectMatch is how well e matches the namespace at path, whose
// inode is ino (0: gone): by both (3), by its path (2), by its inode only
// (1: connected through another path), or not (0). An inode the kernel
// gave again must not pick a dead endpoint over the one at path.
func disconnectMatch(e endpoint, path string, ino uint64) int {
	byPath, byIno := e.Netns == path, ino != 0 && e.NetnsInode == ino
	switch {
	case byPath && byIno:
		return 3
	case byPath:
		return 2
	case byIno:
		return 1
	}
	return 0
}

// markRemoving stores e as "removing" (if it is not yet) and indexes it,
// then ends its lease keepers' exchanges under way: a bound lease's
// release, which follows, is the last the server hears of it (no REQUEST
// retransmitted after it binds the lease again). Caller holds en.busy.
func (a *Engine) markRemoving(n *network, en *entry, e *endpoint) error {
	if e.State == Removing {
		return nil
	}
	e.State = Removing
	if err := a.store.UpdateEndpoint(e.api()); err != nil {
		return err
	}
	n.mu.Lock()
	n.set(en, *e)
	n.mu.Unlock()
	n.endExchanges(en)
	return nil
}

// Endpoints lists the endpoints with their network names, by name; not
// those whose removal is finishing in the background (remove.go).
func (a *Engine) Endpoints() ([]api.Endpoint, error) {
	var eps []endpoint
	names := map[string]string{}
	gone := a.removals.ids()
	for _, n := range a.networkList() {
		names[n.ID] = n.name()
		n.mu.Lock()
		for _, e := range n.endpoints() {
			if !gone[e.ID] {
				eps = append(eps, e)
			}
		}
		n.mu.Unlock()
	}
	out := make([]api.Endpoint, 0, len(eps))
	for _, e := range sortedByName(eps) {
		ae := e.api()
		ae.Network = names[e.NetworkID]
		out = append(out, ae)
	}
	return out, nil
}

// netnsPids lists the processes whose network namespace has inode ino.
func netnsPids(ino uint64) []int {
	if ino == 0 {
		return nil
	}
	dirs, _ := os.ReadDir("/proc")
	want := fmt.Sprintf("net:[%d]", ino)
	var pids []int
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(d.Name(), "%d", &pid); err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + d.Name() + "/ns/net"); err == nil && l == want {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// matchEndpoints finds what ref names, which is never more than one
// thing: NET/NAME is the endpoint NAME on network NET; an exact ID is that
// endpoint; a name is the endpoint with that name, or, when several
// networks have one, the one container (namespace) they all belong to; a
// name that stands for endpoints in different namespaces is refused,
// listing them as NET/NAME. An ID prefix names the one endpoint whose ID
// starts with it.
func (a *Engine) matchEndpoints(ref string) ([]hit, error) {
	if netRef, name, ok := strings.Cut(ref, "/"); ok {
		return a.matchOnNetwork(netRef, name)
	}
	var byName []hit
	for _, n := range a.networkList() {
		n.mu.Lock()
		if en := n.eps[ref]; en != nil {
			n.mu.Unlock()
			return []hit{{n, en, en.ep}}, nil
		}
		if en := n.byName[ref]; en != nil {
			byName = append(byName, hit{n, en, en.ep})
		}
		n.mu.Unlock()
	}
	switch {
	case len(byName) == 1:
		return byName, nil
	case len(byName) > 1:
		return oneContainer(ref, byName)
	}
	return a.matchIDPrefix(ref)
}

// oneContainer returns hits if they are one namespace's endpoints, else
// the error that lists them.
func oneContainer(ref string, hits []hit) ([]hit, error) {
	ino := hits[0].ep.NetnsInode
	same := ino != 0
	var names []string
	for _, h := range hits {
		same = same && h.ep.NetnsInode == ino
		names = append(names, fmt.Sprintf("%s/%s (ID %s)", h.n.name(), h.ep.Name, shortID(h.ep.ID)))
	}
	if same {
		return hits, nil
	}
	slices.Sort(names)
	return nil, invalid(fmt.Errorf("%q names endpoints of different containers: %s; give NET/NAME or the ID of the one to remove",
		ref, strings.Join(names, ", ")))
}

// matchOnNetwork finds the endpoint name on network netRef.
func (a *Engine) matchOnNetwork(netRef, name string) ([]hit, error) {
	n, err := a.lookup(netRef)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if en := n.byName[name]; en != nil {
		return []hit{{n, en, en.ep}}, nil
	}
	return nil, notFound(fmt.Errorf("no endpoint %q on network %s; see mvlan ps", name, n.name()))
}

// matchIDPrefix finds the one endpoint whose ID starts with prefix.
func (a *Engine) matchIDPrefix(prefix string) ([]hit, error) {
	var hits []hit
	for _, n := range a.networkList() {
		n.mu.Lock()
		for id, en := range n.eps {
			if len(prefix) >= 3 && strings.HasPrefix(id, prefix) {
				hits = append(hits, hit{n, en, en.ep})
			}
		}
		n.mu.Unlock()
	}
	switch len(hits) {
	case 1:
		return hits, nil
	case 0:
		return nil, notFound(fmt.Errorf("no container or endpoint %q; see mvlan ps", prefix))
	}
	return nil, invalid(fmt.Errorf("ID prefix %q matches %d endpoints; give more of the ID or the name", prefix, len(hits)))
}
