package store

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mvlan/mvlan/api"
)

// TestBadRecordsQuarantined damages single records of the release's state
// in the ways a decoder meets them; Open quarantines exactly those (and
// the endpoints of a quarantined network), reports each with its reason,
// keeps every other network and endpoint, and frees the bad ones' names.
func TestBadRecordsQuarantined(t *testing.T) {
	hostNet, pubNet := releaseNetworks[0], releaseNetworks[1]
	c1, c2 := releaseEndpoints[0], releaseEndpoints[1]
	cases := []struct {
		name    string
		bucket  []byte
		key     string
		value   string
		reasons map[string]string // quarantined key -> part of its reason
		names   []string          // the endpoint names that remain
	}{
		{"network not JSON", bNetworks, hostNet.ID, "{\"id\":\"" + hostNet.ID + "\", garbage",
			map[string]string{hostNet.ID: "invalid character", releaseEndpoints[2].ID: "network " + hostNet.ID + " is not in the state"},
			[]string{"c1", "c2", "v1"}},
		{"endpoint address not an address", bEndpoints, c2.ID,
			`{"id":"` + c2.ID + `","name":"c2","network_id":"` + pubNet.ID + `","addresses":["172.16.86.999/24"]}`,
			map[string]string{c2.ID: "ParseAddr"}, []string{"c1", "h1", "v1"}},
		{"endpoint under another's key", bEndpoints, c2.ID, `{"id":"` + c1.ID + `","name":"c2","network_id":"` + pubNet.ID + `"}`,
			map[string]string{c2.ID: "under key"}, []string{"c1", "h1", "v1"}},
		{"endpoint of a network never stored", bEndpoints, "ab12", `{"id":"ab12","name":"x","network_id":"nope"}`,
			map[string]string{"ab12": "network nope is not in the state"}, []string{"c1", "c2", "h1", "v1"}},
		{"endpoint name taken twice", bEndpoints, "ff" + c1.ID[2:], `{"id":"ff` + c1.ID[2:] + `","name":"c1","network_id":"` + pubNet.ID + `"}`,
			map[string]string{"ff" + c1.ID[2:]: `name "c1" is taken`}, []string{"c1", "c2", "h1", "v1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := migratedState(t)
			setInFile(t, dir, tc.bucket, []byte(tc.key), []byte(tc.value))
			s, err := Open(dir)
			if err != nil {
				t.Fatalf("open: %v (one bad record must not stop the agent)", err)
			}
			defer s.Close()
			q, got := quarantined(t, s)
			for key, want := range tc.reasons {
				if !strings.Contains(got[key], want) {
					t.Errorf("quarantined %s: reason %q, want it to say %q", key, got[key], want)
				}
			}
			if len(got) != len(tc.reasons) {
				t.Errorf("quarantined %v, want exactly %v", got, tc.reasons)
			}
			for _, r := range q {
				if r.Key == tc.key && string(r.Data) != tc.value {
					t.Errorf("quarantine of %s kept %q, want the stored bytes %q", r.Key, r.Data, tc.value)
				}
			}
			eps, err := s.Endpoints()
			if err != nil {
				t.Fatalf("endpoints after quarantine: %v", err)
			}
			var names []string
			for _, e := range eps {
				names = append(names, e.Name)
			}
			if !slices.Equal(names, tc.names) {
				t.Errorf("endpoints %v, want %v", names, tc.names)
			}
			if _, err := s.Networks(); err != nil {
				t.Errorf("networks after quarantine: %v", err)
			}
		})
	}
}

// TestQuarantinedNameFree: a quarantined network's name can be used again.
func TestQuarantinedNameFree(t *testing.T) {
	dir := stateFrom(t, releaseFixture)
	setInFile(t, dir, bNetworks, []byte(releaseNetworks[0].ID), []byte("garbage"))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := api.Network{ID: NewID(), Name: releaseNetworks[0].Name, Parent: "x"}
	if err := s.CreateNetwork(n); err != nil {
		t.Fatalf("create %s after its record was quarantined: %v", n.Name, err)
	}
}

// TestRenameCorruptNotNotFound: a record that does not decode is
// reported as such, not as a missing endpoint.
func TestRenameCorruptNotNotFound(t *testing.T) {
	dir := stateFrom(t, releaseFixture)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := releaseEndpoints[0].ID
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bEndpoints).Put([]byte(id), []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	_, err = s.RenameEndpoint(id, "other")
	if !errors.Is(err, ErrBadRecord) || errors.Is(err, ErrNotFound) {
		t.Fatalf("rename of an undecodable record: %v, want ErrBadRecord and not ErrNotFound", err)
	}
	s.Close()
}

// migratedState is a state directory holding the release fixture opened
// (so migrated) once.
func migratedState(t testing.TB) string {
	t.Helper()
	dir := stateFrom(t, releaseFixture)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestQuarantineByCaller: a network its user cannot take goes with its
// endpoints; an endpoint goes alone; both free their names.
func TestQuarantineByCaller(t *testing.T) {
	s, err := Open(migratedState(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pubNet, h1 := releaseNetworks[1], releaseEndpoints[2]
	if err := s.QuarantineNetwork(pubNet.ID, "pools refused"); err != nil {
		t.Fatal(err)
	}
	if err := s.QuarantineEndpoint(h1.ID, "unknown state"); err != nil {
		t.Fatal(err)
	}
	if err := s.QuarantineEndpoint("nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("quarantine of a missing endpoint: %v, want ErrNotFound", err)
	}
	_, got := quarantined(t, s)
	want := map[string]string{pubNet.ID: "pools refused", releaseEndpoints[0].ID: "is not in the state",
		releaseEndpoints[1].ID: "is not in the state", h1.ID: "unknown state"}
	for k, reason := range want {
		if !strings.Contains(got[k], reason) {
			t.Errorf("quarantined %s: %q, want %q", k, got[k], reason)
		}
	}
	if len(got) != len(want) {
		t.Errorf("quarantined %v, want %d records", got, len(want))
	}
	eps, err := s.Endpoints()
	if err != nil || len(eps) != 1 || eps[0].Name != "v1" {
		t.Fatalf("endpoints left: %v (%v), want v1", eps, err)
	}
	if err := s.CreateNetwork(api.Network{ID: NewID(), Name: pubNet.Name, Parent: "x"}); err != nil {
		t.Fatalf("name of the quarantined network: %v", err)
	}
	// Dropped, one is gone for good; dropping it again is no error.
	all, _ := quarantined(t, s)
	for _, q := range all {
		if q.Key == h1.ID {
			if err := errors.Join(s.DropQuarantined(q), s.DropQuarantined(q)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, got := quarantined(t, s); len(got) != len(want)-1 || got[h1.ID] != "" {
		t.Errorf("quarantined after dropping %s: %v, want the %d others", h1.ID, got, len(want)-1)
	}
}

// quarantined lists s's quarantined records, and their reasons by key.
func quarantined(t testing.TB, s *Store) ([]Quarantined, map[string]string) {
	t.Helper()
	q, err := s.Quarantined()
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, r := range q {
		reasons[r.Key] = r.Reason
	}
	return q, reasons
}

// TestGarbledQuarantineEntry: a quarantine entry that does not decode
// does not fail the listing: it is logged and still listed by its key
// (bucket, record, time), so that its record stays quarantined for the
// callers, the others are listed as they are, and it can be dropped.
func TestGarbledQuarantineEntry(t *testing.T) {
	dir := migratedState(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pubNet := releaseNetworks[1]
	if err := s.QuarantineNetwork(pubNet.ID, "pools refused"); err != nil {
		t.Fatal(err)
	}
	var entry Quarantined
	all, _ := quarantined(t, s)
	for _, q := range all {
		if q.Key == pubNet.ID {
			entry = q
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	setInFile(t, dir, bQuarantine, entry.qkey(), []byte(`{"bucket":"networks", garbage`))
	var log bytes.Buffer
	s, err = OpenWith(dir, Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := s.Quarantined()
	if err != nil || len(q) != len(all) {
		t.Fatalf("listing with a garbled entry: %d entries (err %v), want all %d", len(q), err, len(all))
	}
	got := slices.IndexFunc(q, func(r Quarantined) bool { return r.Key == pubNet.ID })
	if got < 0 || q[got].Bucket != "networks" || !q[got].At.Equal(entry.At) || !strings.Contains(q[got].Reason, "invalid character") {
		t.Fatalf("garbled entry listed as %+v; want networks/%s at %v with the decoding error", q, pubNet.ID, entry.At)
	}
	if !strings.Contains(log.String(), "quarantine entry does not decode") || !strings.Contains(log.String(), pubNet.ID) {
		t.Errorf("log %q does not report the garbled entry", log.String())
	}
	if err := s.DropQuarantined(q[got]); err != nil {
		t.Fatal(err)
	}
	if q, _ := quarantined(t, s); len(q) != len(all)-1 {
		t.Errorf("after dropping the garbled entry: %d entries, want %d", len(q), len(all)-1)
	}
}
