package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
)

// Quarantined records at start: an endpoint's is dropped once its
// container is gone, a network's once none of its containers is left;
// the others' addresses stay held while their containers may use them.

// quarantinedOwner is the owner, in a network's space, of an address of
// the quarantined endpoint record name.
func quarantinedOwner(name string) string { return "a quarantined record of endpoint " + name }

// settleQuarantined reads the quarantined endpoint records that decode.
// One whose link is gone is dropped: its container no longer exists, so
// nothing is left to report or hold. The addresses of the others are
// returned by network, to be held (DHCP networks hold none: their server
// does); those of records whose network is not in nets (quarantined with
// them) under "", which no new network's subnet may hold. On a cluster
// network this host keeps their claims in etcd. Then the network records
// none of them is of go (dropUnusedNetworks).
func (a *Engine) settleQuarantined(nets map[string]*network) map[string][]ipam.Held {
	qs, err := a.store.Quarantined()
	if err != nil {
		a.log.Warn("cannot list quarantined state records: their addresses are not held", "err", err)
		return nil
	}
	out := map[string][]ipam.Held{}
	used, unsure := map[string]bool{}, false // networks of live records; one's network unknown
	defer func() { a.dropUnusedNetworks(qs, used, unsure) }()
	for _, q := range qs {
		var e api.Endpoint
		if q.Bucket != "endpoints" {
			continue
		}
		if json.Unmarshal(q.Data, &e) != nil {
			unsure = true // whose network it is, and whether its container is there, is unknown
			continue
		}
		if a.quarantinedGone(e, q.Key) {
			err := a.store.DropQuarantined(q)
			a.log.Info("quarantined record dropped: its container is gone", "name", e.Name, "id", e.ID, "netns", e.Netns, "quarantined", q.Reason, "err", err)
			continue
		}
		used[e.NetworkID], unsure = true, unsure || e.NetworkID == ""
		n := nets[e.NetworkID]
		if n != nil && n.DHCP || n == nil && (e.Lease != nil || e.Lease6 != nil) {
			continue // a DHCP server's address: the server holds it
		}
		for _, p := range e.Addrs {
			h := ipam.Held{Addr: p.Addr(), Owner: quarantinedOwner(e.Name)}
			if n == nil { // its network is quarantined too: strayHeld
				out[""] = append(out[""], h)
			} else {
				out[n.ID] = append(out[n.ID], h)
			}
		}
	}
	return out
}

// quarantinedGone reports whether the container of quarantined record e
// (stored under key) is gone for certain: its namespace path is gone,
// holds no network namespace or names another one (by inode and cookie,
// where e has them), or no link there is marked as e's (by its ID or by
// key). A look that fails otherwise is no answer: the record stays, its
// addresses held.
func (a *Engine) quarantinedGone(e api.Endpoint, key string) bool {
	if e.Netns == "" {
		return true
	}
	ids := []string{e.ID}
	if key != e.ID {
		ids = append(ids, key) // a record stored under another key than its ID
	}
	ino, err := a.ns.Check(e.Netns)
	if err != nil || e.NetnsInode != 0 && ino != e.NetnsInode {
		return (err == nil || nsGone(err)) && !a.liveThroughPids(e, ids)
	}
	if e.NetnsCookie != 0 {
		c, err := a.ns.Cookie(e.Netns)
		if err != nil || c != e.NetnsCookie {
			return (err == nil || nsGone(err)) && !a.liveThroughPids(e, ids)
		}
	}
	for _, id := range ids {
		_, err = a.kernelEndpointIn(e.Netns, id)
		if !errors.Is(err, link.ErrNotFound) {
			return nsGone(err)
		}
	}
	return true
}

// liveThroughPids reports whether a process is in e's namespace (by its
// inode) with a link marked as one of ids there: its path went (ip netns
// del, a runtime unmounting it first) while the container runs on, its
// link still answering for its addresses.
func (a *Engine) liveThroughPids(e api.Endpoint, ids []string) bool {
	for _, pid := range netnsPids(e.NetnsInode) {
		path := fmt.Sprintf("/proc/%d/ns/net", pid)
		if ino, err := a.ns.Check(path); err != nil || ino != e.NetnsInode {
			continue // the process moved or exited meanwhile
		}
		for _, id := range ids {
			if _, err := a.kernelEndpointIn(path, id); err == nil {
				return true
			}
		}
	}
	return false
}

// nsGone: err says a namespace path is not there, or holds no network
// namespace any more (a file left where one was mounted).
func nsGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, link.ErrNotNetns)
}

// dropUnusedNetworks drops the quarantined network records (qs, as
// listed) that no live quarantined endpoint record is of (used), as the
// first start after their last container went drops an endpoint's: nothing
// uses the network any more, and pruning then removes the links that were
// left alone for it (its parent if mvlan made it, its host shim). None
// goes while a live record's network is unknown (unsure). A record
// already quarantined when the state was opened goes, not one quarantined
// by this start, so that doctor shows it. A cluster network's stays (this
// host would leave it in etcd: network rm does that), as does one that
// does not decode while the agent is in a cluster. Its data is logged.
func (a *Engine) dropUnusedNetworks(qs []store.Quarantined, used map[string]bool, unsure bool) {
	if unsure {
		return
	}
	for _, q := range qs {
		if q.Bucket != "networks" || used[q.Key] || !a.store.QuarantinedAtOpen(q) {
			continue
		}
		var n api.Network
		read := json.Unmarshal(q.Data, &n) == nil
		if scopeOf(n.Options) == api.ScopeCluster || !read && a.cluster != nil {
			continue
		}
		err := a.store.DropQuarantined(q)
		a.log.Info("quarantined network record dropped: none of its containers is left", "id", q.Key, "name", n.Name,
			"quarantined", q.Reason, "record", string(q.Data), "err", err)
	}
}
