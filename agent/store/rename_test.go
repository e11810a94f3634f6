package store

import (
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestRenameNetwork: a rename moves the name index with the record (the
// old name is free, the new one taken, both across a reopen), refuses a
// name another network has and changes nothing then.
func TestRenameNetwork(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := NewID()
	n := api.Network{ID: id, Name: id[:12], NameFrom: api.NameDockerID, Parent: "eth0", ParentKind: api.ParentExisting}
	other := api.Network{ID: NewID(), Name: "taken", Parent: "eth1", ParentKind: api.ParentExisting}
	for _, err := range []error{s.CreateNetwork(n), s.CreateNetwork(other)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RenameNetwork(id, "taken", api.NameDockerd); !errors.Is(err, ErrExists) {
		t.Fatalf("rename to another network's name: %v, want ErrExists", err)
	}
	if _, err := s.RenameNetwork(NewID(), "x", api.NameDockerd); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rename a missing network: %v, want ErrNotFound", err)
	}
	got, err := s.RenameNetwork(id, "mynet", api.NameDockerd)
	if err != nil || got.Name != "mynet" || got.NameFrom != api.NameDockerd {
		t.Fatalf("rename: %+v, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := n
	want.Name, want.NameFrom = "mynet", api.NameDockerd
	if nets, err := s.Networks(); err != nil || !reflect.DeepEqual(nets, []api.Network{want, other}) {
		t.Errorf("networks after reopen (%v):\n got %+v\nwant %+v", err, nets, []api.Network{want, other})
	}
	if err := s.CreateNetwork(api.Network{ID: NewID(), Name: "mynet", Parent: "x"}); !errors.Is(err, ErrExists) {
		t.Errorf("create under the new name: %v, want ErrExists", err)
	}
	if err := s.CreateNetwork(api.Network{ID: NewID(), Name: id[:12], Parent: "x"}); err != nil {
		t.Errorf("create under the old name: %v, want it free", err)
	}
}

// TestMigrateSchema3: a schema 3 file opens as schema 4; networks named by
// their own ID (short or full: Docker's, made without -o name=) are marked
// as named by Docker's ID, every other record stays as it was.
func TestMigrateSchema3(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	pool := func(s string) []api.Pool {
		p := netip.MustParsePrefix(s)
		return []api.Pool{{Subnet: p, Gateway: p.Addr().Next()}}
	}
	short, full, given := NewID(), NewID(), NewID()
	nets := []api.Network{
		{ID: short, Name: short[:12], Parent: "eth1", ParentKind: api.ParentExisting, Pools: pool("10.0.1.0/24")},
		{ID: full, Name: full, Parent: "eth2", ParentKind: api.ParentExisting, Pools: pool("10.0.2.0/24")},
		{ID: given, Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting, Pools: pool("10.0.0.0/24")},
	}
	for _, n := range nets {
		if err := s.CreateNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	setInFile(t, dir, bMeta, kSchema, []byte("3"))
	if s, err = Open(dir); err != nil {
		t.Fatalf("open a schema 3 file: %v", err)
	}
	got, err := s.Networks()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := schemaIn(t, dir); v != strconv.Itoa(Schema) || Schema < 4 {
		t.Errorf("schema after open %q (Schema %d), want at least 4", v, Schema)
	}
	nets[0].NameFrom, nets[1].NameFrom = api.NameDockerID, api.NameDockerID
	byID := map[string]api.Network{}
	for _, n := range got {
		byID[n.ID] = n
	}
	for _, want := range nets {
		if !reflect.DeepEqual(byID[want.ID], want) {
			t.Errorf("network %s after migration:\n got %+v\nwant %+v", want.Name, byID[want.ID], want)
		}
	}
	if err != nil || len(got) != len(nets) {
		t.Errorf("networks after migration: %d (%v), want %d", len(got), err, len(nets))
	}
}
