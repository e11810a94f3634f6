// Package store keeps the agent's state — networks and endpoints — in a
// bbolt file under the state directory. Nothing derivable is stored: IPAM
// pools are rebuilt from the networks and the addresses their endpoints
// hold, and an endpoint is written with its addresses in one transaction.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/mvlan/mvlan/api"
)

// FileName is the state file inside the state directory.
const FileName = "mvlan.db"

var (
	// ErrLocked means another agent holds the state directory.
	ErrLocked = errors.New("state directory is in use by another agent")
	// ErrNotFound means no such network or endpoint.
	ErrNotFound = errors.New("not found")
	// ErrExists means the name is taken.
	ErrExists = errors.New("already exists")
)

// InUseError is returned when a network to delete still has endpoints.
type InUseError struct {
	Network   string
	Endpoints []string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("network %s has active endpoints (%s); remove them first (mvlan rm -f NAME, or mvlan disconnect)",
		e.Network, strings.Join(e.Endpoints, ", "))
}

var (
	bMeta      = []byte("meta")
	bNetworks  = []byte("networks")
	bNetNames  = []byte("network-names")
	bEndpoints = []byte("endpoints")
	bEpNames   = []byte("endpoint-names")
	kAgentID   = []byte("agent-id")
)

// Store is the agent's state file. Safe for concurrent use.
type Store struct {
	db      *bolt.DB
	agentID string
}

// Open opens (creating if needed) the state in dir, locking it for this
// process. It fails with ErrLocked when another agent has it open.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := db.Update(s.init); err != nil {
		return nil, errors.Join(fmt.Errorf("init %s: %w", path, err), db.Close())
	}
	return s, nil
}

func (s *Store) init(tx *bolt.Tx) error {
	for _, b := range [][]byte{bMeta, bNetworks, bNetNames, bEndpoints, bEpNames} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bMeta)
	if id := meta.Get(kAgentID); id != nil {
		s.agentID = string(id)
		return nil
	}
	s.agentID = NewID()[:8]
	return meta.Put(kAgentID, []byte(s.agentID))
}

// Close closes the state file and releases its lock.
func (s *Store) Close() error { return s.db.Close() }

// AgentID is this state's stable identity, used to mark kernel objects
// the agent owns so that two agents never touch each other's.
func (s *Store) AgentID() string { return s.agentID }

// NewID returns a random 64-hex-digit identifier, as Docker's.
func NewID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Networks returns every stored network, ordered by name.
func (s *Store) Networks() ([]api.Network, error) {
	var out []api.Network
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bNetworks).ForEach(func(_, v []byte) error {
			var n api.Network
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode network: %w", err)
			}
			out = append(out, n)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b api.Network) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// CreateNetwork stores n; ErrExists when its name is taken.
func (s *Store) CreateNetwork(n api.Network) error {
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bNetNames)
		if names.Get([]byte(n.Name)) != nil {
			return fmt.Errorf("network %q: %w", n.Name, ErrExists)
		}
		if err := names.Put([]byte(n.Name), []byte(n.ID)); err != nil {
			return err
		}
		return tx.Bucket(bNetworks).Put([]byte(n.ID), data)
	})
}

// DeleteNetwork removes network id; *InUseError while endpoints use it.
func (s *Store) DeleteNetwork(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		var n api.Network
		if err := getJSON(tx.Bucket(bNetworks), id, &n); err != nil {
			return err
		}
		var users []string
		err := tx.Bucket(bEndpoints).ForEach(func(_, v []byte) error {
			var e api.Endpoint
			if err := json.Unmarshal(v, &e); err != nil {
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
		return errors.Join(tx.Bucket(bNetNames).Delete([]byte(n.Name)), tx.Bucket(bNetworks).Delete([]byte(id)))
	})
}

// Endpoints returns every stored endpoint, ordered by name.
func (s *Store) Endpoints() ([]api.Endpoint, error) {
	var out []api.Endpoint
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bEndpoints).ForEach(func(_, v []byte) error {
			var e api.Endpoint
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode endpoint: %w", err)
			}
			out = append(out, e)
			return nil
		})
	})
	slices.SortFunc(out, func(a, b api.Endpoint) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// epKey indexes endpoint names per network: one namespace may be attached
// to several networks under one name, as a container joins several.
func epKey(e api.Endpoint) []byte { return []byte(e.NetworkID + "/" + e.Name) }

// Endpoint returns the endpoint with ID id.
func (s *Store) Endpoint(id string) (api.Endpoint, error) {
	var e api.Endpoint
	err := s.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bEndpoints), id, &e) })
	return e, err
}

// CreateEndpoint stores e with its addresses in one transaction;
// ErrExists when its name is taken on its network, ErrNotFound when its
// network is gone.
func (s *Store) CreateEndpoint(e api.Endpoint) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bNetworks).Get([]byte(e.NetworkID)) == nil {
			return fmt.Errorf("network %s: %w", e.NetworkID, ErrNotFound)
		}
		names := tx.Bucket(bEpNames)
		if names.Get(epKey(e)) != nil {
			return fmt.Errorf("endpoint %q: %w", e.Name, ErrExists)
		}
		if err := names.Put(epKey(e), []byte(e.ID)); err != nil {
			return err
		}
		return tx.Bucket(bEndpoints).Put([]byte(e.ID), data)
	})
}

// UpdateEndpoint rewrites an existing endpoint (its state changes).
func (s *Store) UpdateEndpoint(e api.Endpoint) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bEndpoints)
		if b.Get([]byte(e.ID)) == nil {
			return fmt.Errorf("endpoint %s: %w", e.ID, ErrNotFound)
		}
		return b.Put([]byte(e.ID), data)
	})
}

// DeleteEndpoint removes endpoint id; removing a missing one is not an error.
func (s *Store) DeleteEndpoint(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		var e api.Endpoint
		err := getJSON(tx.Bucket(bEndpoints), id, &e)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return errors.Join(tx.Bucket(bEpNames).Delete(epKey(e)), tx.Bucket(bEndpoints).Delete([]byte(id)))
	})
}

func getJSON(b *bolt.Bucket, key string, v any) error {
	data := b.Get([]byte(key))
	if data == nil {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return json.Unmarshal(data, v)
}

// RenameEndpoint gives endpoint id the name name (unique on its network),
// in one transaction with its name index, and returns it renamed.
func (s *Store) RenameEndpoint(id, name string) (api.Endpoint, error) {
	var e api.Endpoint
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, names := tx.Bucket(bEndpoints), tx.Bucket(bEpNames)
		if err := getJSON(b, id, &e); err != nil {
			return fmt.Errorf("endpoint %s: %w", id, ErrNotFound)
		}
		if e.Name == name {
			return nil
		}
		old := epKey(e)
		e.Name = name
		if cur := names.Get(epKey(e)); cur != nil && string(cur) != id {
			return fmt.Errorf("endpoint %q: %w", name, ErrExists)
		}
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return errors.Join(names.Delete(old), names.Put(epKey(e), []byte(id)), b.Put([]byte(id), data))
	})
	return e, err
}
