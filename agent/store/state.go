package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mvlan/mvlan/api"
)

// Networks returns every stored network, ordered by name.
func (s *Store) Networks() ([]api.Network, error) {
	var out []api.Network
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bNetworks).ForEach(func(k, v []byte) error {
			r, err := decodeNetwork(k, v)
			if err != nil {
				return err
			}
			out = append(out, r.api())
			return nil
		})
	})
	slices.SortFunc(out, func(a, b api.Network) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// CreateNetwork stores n, with its (empty) released high water;
// ErrExists when its name is taken.
func (s *Store) CreateNetwork(n api.Network) error {
	data, err := json.Marshal(networkToRecord(n))
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bNetNames)
		if names.Get([]byte(n.Name)) != nil {
			return fmt.Errorf("network %q: %w", n.Name, ErrExists)
		}
		if err := names.Put([]byte(n.Name), []byte(n.ID)); err != nil {
			return err
		}
		return errors.Join(newHighWater(tx, n.ID), tx.Bucket(bNetworks).Put([]byte(n.ID), data))
	})
}

// UpdateNetwork rewrites an existing network (its options change); its
// name and ID stay. Its released high water is raised to released (the
// addresses the host shim gives back) in the same transaction.
func (s *Store) UpdateNetwork(n api.Network, released ...netip.Addr) error {
	data, err := json.Marshal(networkToRecord(n))
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		old, err := getNetwork(tx, n.ID)
		if err != nil {
			return err
		}
		if old.Name != n.Name {
			return fmt.Errorf("network %s: a network is not renamed (%q to %q)", n.ID, old.Name, n.Name)
		}
		return errors.Join(raiseHighWater(tx, n.ID, released...), tx.Bucket(bNetworks).Put([]byte(n.ID), data))
	})
}

// RenameNetwork gives network id the name name, which came from from
// (api.NameGiven, NameDockerID or NameDockerd), in one transaction with the
// name index, and returns it renamed. ErrExists when another network has
// the name, ErrNotFound when there is no such network.
func (s *Store) RenameNetwork(id, name, from string) (api.Network, error) {
	var n networkRecord
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		if n, err = getNetwork(tx, id); err != nil {
			return err
		}
		names := tx.Bucket(bNetNames)
		if cur := names.Get([]byte(name)); cur != nil && string(cur) != id {
			return fmt.Errorf("network %q: %w", name, ErrExists)
		}
		old := n.Name
		n.Name, n.NameFrom = name, from
		data, err := json.Marshal(n)
		if err != nil {
			return err
		}
		return errors.Join(names.Delete([]byte(old)), names.Put([]byte(name), []byte(id)), tx.Bucket(bNetworks).Put([]byte(id), data))
	})
	return n.api(), err
}

// DeleteNetwork removes network id; *InUseError while endpoints use it.
func (s *Store) DeleteNetwork(id string) error {
	return s.update(func(tx *bolt.Tx) error {
		n, err := getNetwork(tx, id)
		if err != nil {
			return err
		}
		var users []string
		err = tx.Bucket(bEndpoints).ForEach(func(k, v []byte) error {
			e, err := decodeEndpoint(k, v)
			if err != nil {
				return err
			}
			if e.NetworkID == id {
				users = append(users, e.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(users) > 0 {
			slices.Sort(users)
			return &InUseError{Network: n.Name, Endpoints: users}
		}
		return errors.Join(dropHighWater(tx, id), tx.Bucket(bNetNames).Delete([]byte(n.Name)), tx.Bucket(bNetworks).Delete([]byte(id)))
	})
}

// Endpoints returns every stored endpoint, ordered by name.
func (s *Store) Endpoints() ([]api.Endpoint, error) {
	var out []api.Endpoint
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bEndpoints).ForEach(func(k, v []byte) error {
			r, err := decodeEndpoint(k, v)
			if err != nil {
				return err
			}
			out = append(out, r.api())
			return nil
		})
	})
	slices.SortFunc(out, func(a, b api.Endpoint) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// epKey indexes endpoint names per network: one namespace may be attached
// to several networks under one name, as a container joins several.
func epKey(networkID, name string) []byte { return []byte(networkID + "/" + name) }

// Endpoint returns the endpoint with ID id.
func (s *Store) Endpoint(id string) (api.Endpoint, error) {
	var r endpointRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		r, err = getEndpoint(tx, id)
		return err
	})
	return r.api(), err
}

// CreateEndpoint stores e with its addresses in one transaction;
// ErrExists when its name is taken on its network, ErrNotFound when its
// network is gone.
func (s *Store) CreateEndpoint(e api.Endpoint) error {
	data, err := json.Marshal(endpointToRecord(e))
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bNetworks).Get([]byte(e.NetworkID)) == nil {
			return fmt.Errorf("network %s: %w", e.NetworkID, ErrNotFound)
		}
		names := tx.Bucket(bEpNames)
		if names.Get(epKey(e.NetworkID, e.Name)) != nil {
			return fmt.Errorf("endpoint %q: %w", e.Name, ErrExists)
		}
		if err := names.Put(epKey(e.NetworkID, e.Name), []byte(e.ID)); err != nil {
			return err
		}
		return tx.Bucket(bEndpoints).Put([]byte(e.ID), data)
	})
}

// UpdateEndpoint rewrites an existing endpoint (its state changes).
func (s *Store) UpdateEndpoint(e api.Endpoint) error {
	data, err := json.Marshal(endpointToRecord(e))
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEndpoints)
		if b.Get([]byte(e.ID)) == nil {
			return fmt.Errorf("endpoint %s: %w", e.ID, ErrNotFound)
		}
		return b.Put([]byte(e.ID), data)
	})
}

// UpdateEndpointLater rewrites endpoint e with the next commit (or on its
// own soon after): a change the next start can do without if a crash
// loses it. A commit after it (any caller's) has it on disk first.
func (s *Store) UpdateEndpointLater(e api.Endpoint) {
	data, err := json.Marshal(endpointToRecord(e))
	if err != nil {
		return
	}
	s.commit.later(s.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bEndpoints)
		if b.Get([]byte(e.ID)) == nil {
			return fmt.Errorf("endpoint %s: %w", e.ID, ErrNotFound)
		}
		return b.Put([]byte(e.ID), data)
	})
}

// Flush puts what UpdateEndpointLater queued on disk now.
func (s *Store) Flush() error { return s.commit.flush(s.db) }

// DeleteEndpoint removes endpoint id; removing a missing one is not an error.
func (s *Store) DeleteEndpoint(id string) error { return s.update(deleteEndpoint(id)) }

// DeleteEndpointLater removes endpoint id with the next commit (as
// UpdateEndpointLater), before that commit's own changes: for a record
// whose loss in a crash the next start makes good (an endpoint whose
// kernel objects are gone: the start finishes its removal), and whose
// name and addresses no later change can take before it is gone.
func (s *Store) DeleteEndpointLater(id string) { s.commit.later(s.db, deleteEndpoint(id)) }

func deleteEndpoint(id string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		e, err := getEndpoint(tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return errors.Join(raiseHighWater(tx, e.NetworkID, prefixAddrs(e.Addrs)...),
			tx.Bucket(bEpNames).Delete(epKey(e.NetworkID, e.Name)), tx.Bucket(bEndpoints).Delete([]byte(id)))
	}
}

// RenameEndpoint gives endpoint id the name name (unique on its network),
// in one transaction with its name index, and returns it renamed.
// ErrNotFound when there is no such endpoint, ErrBadRecord when its
// record does not decode.
func (s *Store) RenameEndpoint(id, name string) (api.Endpoint, error) {
	var e endpointRecord
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		if e, err = getEndpoint(tx, id); err != nil {
			return err
		}
		if e.Name == name {
			return nil
		}
		names := tx.Bucket(bEpNames)
		old := epKey(e.NetworkID, e.Name)
		e.Name = name
		if cur := names.Get(epKey(e.NetworkID, name)); cur != nil && string(cur) != id {
			return fmt.Errorf("endpoint %q: %w", name, ErrExists)
		}
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return errors.Join(names.Delete(old), names.Put(epKey(e.NetworkID, name), []byte(id)), tx.Bucket(bEndpoints).Put([]byte(id), data))
	})
	return e.api(), err
}

func getNetwork(tx *bolt.Tx, id string) (networkRecord, error) {
	data := tx.Bucket(bNetworks).Get([]byte(id))
	if data == nil {
		return networkRecord{}, fmt.Errorf("network %s: %w", id, ErrNotFound)
	}
	return decodeNetwork([]byte(id), data)
}

func getEndpoint(tx *bolt.Tx, id string) (endpointRecord, error) {
	data := tx.Bucket(bEndpoints).Get([]byte(id))
	if data == nil {
		return endpointRecord{}, fmt.Errorf("endpoint %s: %w", id, ErrNotFound)
	}
	return decodeEndpoint([]byte(id), data)
}
