package store

import (
	"encoding/json"
	"fmt"
	"net/netip"

	bolt "go.etcd.io/bbolt"
)

// bHighWater holds, by network ID, the highest address of each family
// that the network gave back (HighWater): endpoints' addresses, raised in
// the transaction that deletes the endpoint (no commit of its own), and
// the host shim's (UpdateNetwork). CreateNetwork writes a network's
// (empty) record, so a network without one is of an older mvlan, of a
// state restored from a snapshot (RestoreSnapshot drops them: the
// snapshot may miss what was given back after it), or its record did not
// decode: its high water is unknown (ReleasedHighWater's known is false)
// and stays so; a raise does not make it known. The record goes with its
// network.
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

// ReleasedHighWater is network id's HighWater (zero when it gave nothing
// back); known is false when the network has no valid record (see
// bHighWater): then any of its addresses may have been given back. A
// record that does not decode is logged, not an error.
func (s *Store) ReleasedHighWater(id string) (h HighWater, known bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		var bad error
		h, known, bad = getHighWater(tx, id)
		if bad != nil {
			s.log.Warn("released high water unknown", "err", bad)
		}
		return nil
	})
	return h, known, err
}

// getHighWater reads network id's record; bad says why a stored one
// does not decode (then known is false).
func getHighWater(tx *bolt.Tx, id string) (h HighWater, known bool, bad error) {
	b := tx.Bucket(bHighWater)
	if b == nil {
		return h, false, nil
	}
	data := b.Get([]byte(id))
	if data == nil {
		return h, false, nil
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return HighWater{}, false, fmt.Errorf("network %s: stored value %q: %w", id, data, err)
	}
	return h, true, nil
}

// newHighWater gives network id an empty record in tx: from now on
// what it gives back is known.
func newHighWater(tx *bolt.Tx, id string) error {
	return putHighWater(tx, id, HighWater{})
}

// raiseHighWater raises network id's HighWater to addrs in tx. It never
// fails on the stored value: an unknown one stays unknown, and one that
// does not decode is deleted (unknown from now on) rather than fail the
// change it is part of (a lazy delete's error is dropped).
func raiseHighWater(tx *bolt.Tx, id string, addrs ...netip.Addr) error {
	h, known, bad := getHighWater(tx, id)
	if bad != nil {
		return dropHighWater(tx, id)
	}
	if raised := h.Raise(addrs...); known && raised != h {
		return putHighWater(tx, id, raised)
	}
	return nil
}

func putHighWater(tx *bolt.Tx, id string, h HighWater) error {
	b, err := tx.CreateBucketIfNotExists(bHighWater)
	if err != nil {
		return err
	}
	data, err := json.Marshal(h)
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

// prefixAddrs returns the addresses of ps.
func prefixAddrs(ps []netip.Prefix) []netip.Addr {
	out := make([]netip.Addr, len(ps))
	for i, p := range ps {
		out[i] = p.Addr()
	}
	return out
}
