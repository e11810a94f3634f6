package engine

import (
	"errors"
	"fmt"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/netconf"
)

// Network names that are not the operator's. Docker's driver protocol
// carries no network name: a network made through Docker without
// -o name=NAME is named by its ID (api.NameDockerID) until the Docker
// front end learns dockerd's name for it and renames it (api.NameDockerd).
// Nothing in the kernel carries the name of such a network: its links'
// marks carry its ID and its host shim is named by its ID (shimName), so
// a rename is one store write and the index following it.

// nameFrom is where the name of a new network comes from: one named by its
// own ID is Docker's, made without -o name= (no one else knows the ID
// before the network exists).
func nameFrom(id, name string) string {
	if store.NamedByID(id, name) {
		return api.NameDockerID
	}
	return api.NameGiven
}

// RenameNetwork names network id to, a name that came from from
// (api.NameDockerd), if it is still named old (a rename that raced another
// is dropped); it reports whether it renamed. Only a network whose name is
// not the operator's is renamed, and not a cluster network (its name is
// the cluster's). Invalid for a bad name, conflict when another network
// has the name. Crash safe: the record and the store's name index change
// in one transaction; the index follows it.
func (a *Engine) RenameNetwork(id, old, to, from string) (bool, error) {
	if err := netconf.CheckName("network", to); err != nil {
		return false, invalid(err)
	}
	if from != api.NameDockerID && from != api.NameDockerd {
		return false, invalid(fmt.Errorf("network name source %q: want %s or %s", from, api.NameDockerID, api.NameDockerd))
	}
	a.netOps.Lock() // names are unique across networks: as create, under netOps
	defer a.netOps.Unlock()
	n := a.networkByID(id)
	switch {
	case n == nil:
		return false, notFound(fmt.Errorf("network %s not found", shortID(id)))
	case n.name() != old || n.name() == to && n.nameFrom() == from:
		return false, nil
	case n.nameFrom() == api.NameGiven:
		return false, invalid(fmt.Errorf("network %s keeps the name it was created with", n.name()))
	case scopeOf(n.Options) == api.ScopeCluster:
		return false, invalid(fmt.Errorf("network %s is a cluster network: its name is the cluster's", n.name()))
	}
	for _, o := range a.networkList() {
		if o != n && o.name() == to {
			return false, conflict(fmt.Errorf("network name %s is taken by network %s", to, shortID(o.ID)))
		}
	}
	stored, err := a.store.RenameNetwork(id, to, from)
	if errors.Is(err, store.ErrExists) {
		return false, conflict(fmt.Errorf("network name %s is taken: %w", to, err))
	}
	if err != nil {
		return false, fmt.Errorf("rename network %s to %s: %w", old, to, err)
	}
	n.setName(stored.Name, stored.NameFrom)
	a.log.Info("network renamed", "name", to, "was", old, "id", shortID(id), "name_from", from)
	return true, nil
}
