package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/mvlan/mvlan/api"
)

var kSchema = []byte("schema")

// SchemaError means the state file was written by a newer mvlan.
type SchemaError struct {
	Found int
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("state file has schema %d, written by a newer mvlan; this one reads schemas 0 to %d (run the newer mvlan, or restore the state it was upgraded from)", e.Found, Schema)
}

// migrations[v] turns a schema v file into a schema v+1 one, inside the
// transaction that opens it: a crash half way leaves the file as it was.
var migrations = []func(*bolt.Tx) error{
	0: migrate0,
	1: func(*bolt.Tx) error { return nil }, // schema 2 only added optional fields
	2: func(*bolt.Tx) error { return nil }, // so did schema 3
	3: migrate3,
	4: func(*bolt.Tx) error { return nil }, // schema 5 only added an optional field
	5: func(*bolt.Tx) error { return nil }, // so did schema 6
}

// migrate brings the file's records to Schema and records the version.
// A file without a schema key is schema 0 if it has an agent ID (every
// file an agent opened has one), else a new file. A schema key that is
// not a version is a *CorruptError (BadSchema): the records cannot be
// read, and --recover restores the snapshot.
func migrate(tx *bolt.Tx) error {
	meta := tx.Bucket(bMeta)
	v := 0
	switch raw := meta.Get(kSchema); {
	case raw != nil:
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 0 {
			return &CorruptError{Path: tx.DB().Path(), Problem: BadSchema,
				Detail: fmt.Sprintf("schema key %q is not a schema version (this mvlan reads 0 to %d)", raw, Schema)}
		}
		v = n
	case meta.Get(kAgentID) == nil:
		v = Schema
	}
	if v > Schema {
		return &SchemaError{Found: v}
	}
	for ; v < Schema; v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
		}
	}
	if string(meta.Get(kSchema)) == strconv.Itoa(Schema) {
		return nil
	}
	return meta.Put(kSchema, []byte(strconv.Itoa(Schema)))
}

// migrate0 rewrites schema 0 records (api.Network and api.Endpoint as the
// API marshalled them) as schema 1 records. Schema 1 kept the field names,
// so decoding through the schema 1 types reads every field schema 0 stored
// and drops what the API added and the store never needed (a network's
// status and endpoints, an endpoint's network name). A record that does
// not decode is left for sweep to quarantine.
func migrate0(tx *bolt.Tx) error {
	if err := rewrite(tx.Bucket(bNetworks), func(v []byte) ([]byte, error) {
		var r networkRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, err
		}
		return json.Marshal(r)
	}); err != nil {
		return err
	}
	return rewrite(tx.Bucket(bEndpoints), func(v []byte) ([]byte, error) {
		var r endpointRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, err
		}
		return json.Marshal(r)
	})
}

// migrate3 marks the networks named by their own ID (full, or the short
// 12 digits `docker network ls` shows) as named by Docker's ID: Docker's
// networks made without -o name=, which the agent names after dockerd's
// name for them when it can ask dockerd. Nothing else names a network by
// an ID no one knows before the network exists.
func migrate3(tx *bolt.Tx) error {
	return rewrite(tx.Bucket(bNetworks), func(v []byte) ([]byte, error) {
		var r networkRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, err
		}
		if r.NameFrom != "" || !NamedByID(r.ID, r.Name) {
			return v, nil
		}
		r.NameFrom = api.NameDockerID
		return json.Marshal(r)
	})
}

// NamedByID reports whether name is network id's own ID, full or short.
func NamedByID(id, name string) bool {
	return name == id || len(id) > 12 && name == id[:12]
}

// rewrite replaces each value of b by conv's result; values conv fails on
// are left as they are.
func rewrite(b *bolt.Bucket, conv func([]byte) ([]byte, error)) error {
	type kv struct{ k, v []byte }
	var changed []kv
	err := b.ForEach(func(k, v []byte) error {
		if nv, err := conv(v); err == nil && !bytes.Equal(nv, v) {
			changed = append(changed, kv{slices.Clone(k), nv})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range changed {
		if err := b.Put(c.k, c.v); err != nil {
			return err
		}
	}
	return nil
}
