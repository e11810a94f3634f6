package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bQuarantine = []byte("quarantine")

// Quarantined is a record Open took out of the state because it did not
// decode or broke a rule (an endpoint of a missing network, a name taken
// twice). It stays in the file, out of the way, for an operator to read.
type Quarantined struct {
	Bucket string    `json:"bucket"` // "networks" or "endpoints"
	Key    string    `json:"key"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	Data   []byte    `json:"data"` // the record as it was stored

	qk []byte // its key in the quarantine bucket, as listed
}

// Quarantined lists the records Open has quarantined, oldest first. An
// entry of the quarantine that does not decode is logged and listed as
// its key names it (bucket, record key, time), without Data and with the
// decoding error as its Reason: its record is still quarantined.
func (s *Store) Quarantined() ([]Quarantined, error) {
	var out []Quarantined
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bQuarantine).ForEach(func(k, v []byte) error {
			q, err := decodeQuarantined(k, v)
			if err != nil {
				s.log.Warn("quarantine entry does not decode; its record is still listed as quarantined, by the entry's key",
					"key", string(k), "err", err)
			}
			out = append(out, q)
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b Quarantined) int { return a.At.Compare(b.At) })
	return out, err
}

// decodeQuarantined decodes the quarantine entry k=v. One that does not
// decode is returned too, as its key (qkey) names it, with the error.
func decodeQuarantined(k, v []byte) (Quarantined, error) {
	var q Quarantined
	err := json.Unmarshal(v, &q)
	if err == nil {
		q.qk = slices.Clone(k)
		return q, nil
	}
	err = fmt.Errorf("quarantine entry %s: %w", k, err)
	bucket, rest, _ := strings.Cut(string(k), "/")
	key, at := rest, ""
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		key, at = rest[:i], rest[i+1:]
	}
	q = Quarantined{Bucket: bucket, Key: key, Reason: err.Error(), qk: slices.Clone(k)}
	if ns, perr := strconv.ParseInt(at, 10, 64); perr == nil {
		q.At = time.Unix(0, ns).UTC()
	}
	return q, err
}

// qkey is q's key in the quarantine bucket.
func (q Quarantined) qkey() []byte {
	if q.qk != nil {
		return q.qk
	}
	return fmt.Appendf(nil, "%s/%s/%d", q.Bucket, q.Key, q.At.UnixNano())
}

// QuarantinedAtOpen reports whether q (as Quarantined listed it) was in
// the quarantine when the state was opened, not quarantined by this Open
// or since.
func (s *Store) QuarantinedAtOpen(q Quarantined) bool { return s.atOpen[string(q.qkey())] }

// DropQuarantined deletes quarantined record q (as Quarantined listed
// it), for one whose subject is gone (a container's that no longer
// exists); dropping one already gone is not an error.
func (s *Store) DropQuarantined(q Quarantined) error {
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bQuarantine).Delete(q.qkey()) })
}

// quarantine moves record key of bucket into the quarantine bucket.
func quarantine(tx *bolt.Tx, bucket string, key []byte, reason string) error {
	b := tx.Bucket([]byte(bucket))
	q := Quarantined{Bucket: bucket, Key: string(key), Reason: reason, At: time.Now().UTC(),
		Data: slices.Clone(b.Get(key))}
	data, err := json.Marshal(q)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bQuarantine).Put(q.qkey(), data); err != nil {
		return err
	}
	return b.Delete(key)
}

// sweep checks every record and name index entry: a record that does not
// decode, names a missing network or takes a name already taken is
// quarantined (one bad record is not fatal to the others), and the name
// indexes are made to match the records that remain.
func sweep(tx *bolt.Tx) error {
	nets := map[string]bool{}
	netNames := map[string][]byte{}
	err := sweepBucket(tx, bNetworks, func(k, v []byte) error {
		r, err := decodeNetwork(k, v)
		if err != nil {
			return err
		}
		if id, ok := netNames[r.Name]; ok {
			return fmt.Errorf("network %s: name %q is taken by network %s", k, r.Name, id)
		}
		nets[r.ID], netNames[r.Name] = true, slices.Clone(k)
		return nil
	})
	if err != nil {
		return err
	}
	epNames := map[string][]byte{}
	err = sweepBucket(tx, bEndpoints, func(k, v []byte) error {
		r, err := decodeEndpoint(k, v)
		if err != nil {
			return err
		}
		if !nets[r.NetworkID] {
			return fmt.Errorf("endpoint %s: network %s is not in the state", k, r.NetworkID)
		}
		key := r.NetworkID + "/" + r.Name
		if id, ok := epNames[key]; ok {
			return fmt.Errorf("endpoint %s: name %q is taken on its network by endpoint %s", k, r.Name, id)
		}
		epNames[key] = slices.Clone(k)
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(syncIndex(tx.Bucket(bNetNames), netNames), syncIndex(tx.Bucket(bEpNames), epNames))
}

// sweepBucket quarantines each record of bucket that ok rejects.
func sweepBucket(tx *bolt.Tx, bucket []byte, ok func(k, v []byte) error) error {
	type bad struct {
		key    []byte
		reason string
	}
	var bads []bad
	err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		if err := ok(k, v); err != nil {
			bads = append(bads, bad{slices.Clone(k), err.Error()})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, b := range bads {
		if err := quarantine(tx, string(bucket), b.key, b.reason); err != nil {
			return err
		}
	}
	return nil
}

// syncIndex makes the name index b hold exactly want (name -> id).
func syncIndex(b *bolt.Bucket, want map[string][]byte) error {
	var stale [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if id, ok := want[string(k)]; !ok || string(id) != string(v) {
			stale = append(stale, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	for name, id := range want {
		if string(b.Get([]byte(name))) != string(id) {
			if err := b.Put([]byte(name), id); err != nil {
				return err
			}
		}
	}
	return nil
}

// QuarantineNetwork quarantines network id and its endpoints with reason,
// for a record the store decodes but its user cannot take (the engine's
// address pools refuse its subnet, say). Kernel objects are not touched.
func (s *Store) QuarantineNetwork(id, reason string) error {
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bNetworks).Get([]byte(id)) == nil {
			return fmt.Errorf("network %s: %w", id, ErrNotFound)
		}
		if err := quarantine(tx, string(bNetworks), []byte(id), reason); err != nil {
			return err
		}
		return sweep(tx) // its endpoints now name a missing network
	})
}

// QuarantineEndpoint quarantines endpoint id with reason, as
// QuarantineNetwork does a network.
func (s *Store) QuarantineEndpoint(id, reason string) error {
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bEndpoints).Get([]byte(id)) == nil {
			return fmt.Errorf("endpoint %s: %w", id, ErrNotFound)
		}
		if err := quarantine(tx, string(bEndpoints), []byte(id), reason); err != nil {
			return err
		}
		return sweep(tx) // frees its name
	})
}
