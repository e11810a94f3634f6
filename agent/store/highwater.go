package store

import (
	"encoding/json"
	"fmt"
	"net/netip"

	bolt "go.etcd.io/bbolt"
)

// bHighWater holds, by network ID, the highest address of each family
// that an endpoint of the network gave back (HighWater). It is raised in
// the transaction that deletes the endpoint, so it costs no commit of its
// own, and deleted with the network. A state rebuilt from a snapshot
// (--recover) starts without it.
var bHighWater = []byte("released-high-water")

// HighWater is the highest address of each family that an endpoint of a
// network has released: addresses above it, never held by a removed
// endpoint, are in no neighbour table as another endpoint's.
type HighWater struct {
	V4 netip.Addr `json:"v4,omitzero"`
	V6 netip.Addr `json:"v6,omitzero"`
}

// Raise returns h raised to every address of addrs.
func (h HighWater) Raise(addrs ...netip.Addr) HighWater {
	for _, a := range addrs {
		top := &h.V6
		if a.Is4() {
			top = &h.V4
		}
		if !top.IsValid() || top.Less(a) {
			*top = a
		}
	}
	return h
}

// Above reports whether a is above h's address of its family.
func (h HighWater) Above(a netip.Addr) bool {
	top := h.V6
	if a.Is4() {
		top = h.V4
	}
	return !top.IsValid() || top.Less(a)
}

// ReleasedHighWater is network id's HighWater (zero when none of its
// endpoints was ever removed).
func (s *Store) ReleasedHighWater(id string) (HighWater, error) {
	var h HighWater
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		h, err = getHighWater(tx, id)
		return err
	})
	return h, err
}

func getHighWater(tx *bolt.Tx, id string) (HighWater, error) {
	var h HighWater
	b := tx.Bucket(bHighWater)
	if b == nil {
		return h, nil
	}
	if data := b.Get([]byte(id)); data != nil {
		if err := json.Unmarshal(data, &h); err != nil {
			return HighWater{}, fmt.Errorf("released high water of network %s: %w", id, err)
		}
	}
	return h, nil
}

// raiseHighWater raises network id's HighWater to addrs in tx.
func raiseHighWater(tx *bolt.Tx, id string, addrs []netip.Prefix) error {
	h, err := getHighWater(tx, id)
	if err != nil {
		return err
	}
	raised := h
	for _, p := range addrs {
		raised = raised.Raise(p.Addr())
	}
	if raised == h {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bHighWater)
	if err != nil {
		return err
	}
	data, err := json.Marshal(raised)
	if err != nil {
		return err
	}
	return b.Put([]byte(id), data)
}

// dropHighWater forgets network id's HighWater in tx.
func dropHighWater(tx *bolt.Tx, id string) error {
	if b := tx.Bucket(bHighWater); b != nil {
		return b.Delete([]byte(id))
	}
	return nil
}
