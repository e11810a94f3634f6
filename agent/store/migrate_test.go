package store

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mvlan/mvlan/api"
)

// releaseFixture is a state file written by the release before schemas
// (commit cdbbc8c): its agent made pub_net (existing parent, dual stack,
// ip-range, aux address, labels), host_net (host-only, internal, serial)
// and endpoints c1, c2 and h1 in a sandbox; vlan50 (a VLAN parent mvlan
// creates, which this kernel cannot make) and its endpoint v1, caught in
// "creating", were added with that release's store package.
const releaseFixture = "testdata/v0-release-cdbbc8c.db"

// stateFrom copies a state file into a fresh state directory.
func stateFrom(t testing.TB, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// The release's records, field by field, as its CLI printed them.
var releaseNetworks = []api.Network{
	{ID: "7c6e6bc89a312ea13ba10b8c6f4eca35604b4b70d8bbf84ca8cca545630d2fa4", Name: "host_net", Driver: "macvlan",
		Created: ts("2026-12-01T22:31:05.189952927Z"), Parent: "mvl-7c6e6bc89a3", ParentKind: api.ParentHostOnly,
		LinkKind: "bridge", Mode: "bridge", Internal: true, Serial: true,
		Pools: []api.Pool{{Subnet: pfx("10.1.100.0/24"), Gateway: addr("10.1.100.1")}}, DatapathID: 2},
	{ID: "bcc34e260a06514b4774a35b148ec6900571f762d0b5d67e348175efe68b7f37", Name: "pub_net", Driver: "macvlan",
		Created: ts("2026-12-01T22:31:05.146569266Z"), Parent: "eth0", ParentKind: api.ParentExisting,
		LinkKind: "veth", Mode: "bridge", IPv6: true,
		Labels:  map[string]string{"team": "net", "tier": "front"},
		Options: map[string]string{"macvlan_mode": "bridge", "parent": "eth0"},
		Pools: []api.Pool{
			{Subnet: pfx("172.16.86.0/24"), Gateway: addr("172.16.86.1"), IPRange: pfx("172.16.86.128/25"),
				Aux: map[string]netip.Addr{"exclude_host": addr("172.16.86.250")}},
			{Subnet: pfx("2001:db8:abc8::/64"), Gateway: addr("2001:db8:abc8::10")},
		}, DatapathID: 1},
	{ID: "5a1e0c2b9d8f4e3a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a", Name: "vlan50", Driver: "macvlan",
		Created: ts("2026-12-01T22:31:06Z"), Parent: "eth0.50", ParentKind: api.ParentVLAN, Mode: "bridge",
		Pools: []api.Pool{{Subnet: pfx("192.168.50.0/24"), Gateway: addr("192.168.50.1")}}, DatapathID: 3},
}

var releaseEndpoints = []api.Endpoint{
	{ID: "5861bf4b5b6f516f20bee2d2d250a170a5772151857f3311fa27e7a051812bff", Name: "c1",
		NetworkID: "bcc34e260a06514b4774a35b148ec6900571f762d0b5d67e348175efe68b7f37", Netns: "/run/netns/c1",
		NetnsInode: 4026532319, OwnsNetns: true, IfName: "eth0", MAC: "fa:4c:a4:10:98:3d",
		Addrs: []netip.Prefix{pfx("172.16.86.10/24"), pfx("2001:db8:abc8::20/64")}, State: api.EndpointReady,
		Created: ts("2026-12-01T22:31:05.226279011Z"), NetnsCookie: 4105, Ifindex: 2},
	{ID: "a33965a959b188ea02f8a3c7d5f650d0834e10cb24107d0d7d021a2dfe975bd8", Name: "c2",
		NetworkID: "bcc34e260a06514b4774a35b148ec6900571f762d0b5d67e348175efe68b7f37", Netns: "/run/netns/c2",
		NetnsInode: 4026532389, OwnsNetns: true, IfName: "eth0", MAC: "be:21:d8:c2:8b:95",
		Addrs: []netip.Prefix{pfx("172.16.86.128/24"), pfx("2001:db8:abc8::1/64")}, State: api.EndpointReady,
		Created: ts("2026-12-01T22:31:05.277785544Z"), NetnsCookie: 4106, Ifindex: 2},
	{ID: "1e89bb7f1120bbd7c2adc8aa79a4f0a7cce862c3ec627e31f6b4a1e5adff8081", Name: "h1",
		NetworkID: "7c6e6bc89a312ea13ba10b8c6f4eca35604b4b70d8bbf84ca8cca545630d2fa4", Netns: "/run/netns/h1",
		NetnsInode: 4026532459, OwnsNetns: true, IfName: "mv0", MAC: "42:d4:48:c7:46:b3",
		Addrs: []netip.Prefix{pfx("10.1.100.2/24")}, State: api.EndpointReady,
		Created: ts("2026-12-01T22:31:05.337647744Z"), NetnsCookie: 4107, Ifindex: 2},
	{ID: "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0", Name: "v1",
		NetworkID: "5a1e0c2b9d8f4e3a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a", Netns: "/run/netns/v1",
		NetnsInode: 4026532400, OwnsNetns: true, IfName: "eth0", MAC: "02:42:c0:a8:32:02",
		Addrs: []netip.Prefix{pfx("192.168.50.2/24")}, State: api.EndpointCreating,
		Created: ts("2026-12-01T22:31:07Z")},
}

// TestMigrateFromRelease opens the release's state file: every field of
// every record survives, the agent keeps its ID, the file gets the schema
// version and the indexes still work; a second open changes nothing.
func TestMigrateFromRelease(t *testing.T) {
	dir := stateFrom(t, releaseFixture)
	if got := schemaIn(t, dir); got != "" {
		t.Fatalf("fixture already has schema %q; it must be a schema 0 file", got)
	}
	for round := range 2 {
		s, err := Open(dir)
		if err != nil {
			t.Fatalf("open %d: %v", round, err)
		}
		if s.AgentID() != "b25b1f56" {
			t.Errorf("agent id %q, want the release's b25b1f56", s.AgentID())
		}
		nets, err := s.Networks()
		if err != nil || !reflect.DeepEqual(nets, releaseNetworks) {
			t.Errorf("networks (err %v):\n got %+v\nwant %+v", err, nets, releaseNetworks)
		}
		eps, err := s.Endpoints()
		if err != nil || !reflect.DeepEqual(eps, releaseEndpoints) {
			t.Errorf("endpoints (err %v):\n got %+v\nwant %+v", err, eps, releaseEndpoints)
		}
		if q, err := s.Quarantined(); err != nil || len(q) != 0 {
			t.Errorf("quarantined %v (err %v), want none", q, err)
		}
		if err := s.CreateNetwork(api.Network{ID: NewID(), Name: "pub_net", Parent: "x"}); !errors.Is(err, ErrExists) {
			t.Errorf("name index: create pub_net again: %v, want ErrExists", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := schemaIn(t, dir); got != strconv.Itoa(Schema) {
			t.Fatalf("schema after open %d: %q, want %d", round, got, Schema)
		}
	}
}

// TestNewerSchemaRefused: a file from a newer mvlan is not touched.
func TestNewerSchemaRefused(t *testing.T) {
	dir := stateFrom(t, releaseFixture)
	setInFile(t, dir, bMeta, kSchema, []byte(strconv.Itoa(Schema+1)))
	_, err := Open(dir)
	var se *SchemaError
	if !errors.As(err, &se) || se.Found != Schema+1 {
		t.Fatalf("open: %v, want *SchemaError naming %d", err, Schema+1)
	}
	if got := schemaIn(t, dir); got != strconv.Itoa(Schema+1) {
		t.Fatalf("schema rewritten to %q", got)
	}
}

// TestBadSchemaCorrupt: a schema key that is not a version is a
// *CorruptError naming the value (so start-up offers --recover), the file
// is left as it was, and the snapshot restores the state.
func TestBadSchemaCorrupt(t *testing.T) {
	for _, bad := range []string{"abc", "-1", "4x", " 6"} {
		t.Run(bad, func(t *testing.T) {
			dir := migratedState(t)
			setInFile(t, dir, bMeta, kSchema, []byte(bad))
			_, err := Open(dir)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Problem != BadSchema || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v, want a *CorruptError (bad schema key)", err)
			}
			if msg := err.Error(); !strings.Contains(msg, strconv.Quote(bad)) || !strings.Contains(msg, FileName) {
				t.Errorf("message %q does not name the value %q and the file", msg, bad)
			}
			if got := schemaIn(t, dir); got != bad {
				t.Fatalf("schema rewritten to %q", got)
			}
			if _, err := RestoreSnapshot(dir); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatalf("open after restoring the snapshot: %v", err)
			}
			s.Close()
		})
	}
}

// schemaIn reads the schema key of the state file in dir with bbolt alone.
func schemaIn(t testing.TB, dir string) (v string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bMeta).Get(kSchema))
		return nil
	})
	return v
}

// setInFile writes key=value into bucket of the state file in dir with
// bbolt alone, as a damaged or foreign writer would.
func setInFile(t testing.TB, dir string, bucket, key, value []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, value) })
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
}
