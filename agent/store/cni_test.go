package store

import (
	"testing"

	"github.com/mvlan/mvlan/api"
)

// TestCNIIdentityKept: an endpoint's CNI identity (schema 2) is read back
// after the file is closed and opened again; one without it stays without.
func TestCNIIdentityKept(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := api.Network{ID: NewID(), Name: "pub_net", Parent: "eth0", ParentKind: api.ParentExisting}
	at := &api.CNIAttachment{Network: "mvnet", ContainerID: "c0ffee", IfName: "net1"}
	with := api.Endpoint{ID: NewID(), Name: "pod", NetworkID: n.ID, CNI: at}
	without := api.Endpoint{ID: NewID(), Name: "c1", NetworkID: n.ID}
	for _, err := range []error{s.CreateNetwork(n), s.CreateEndpoint(with), s.CreateEndpoint(without), s.Close()} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Endpoint(with.ID)
	if err != nil || got.CNI == nil || *got.CNI != *at {
		t.Errorf("endpoint with a CNI identity read back as %+v (%v); want %+v", got.CNI, err, at)
	}
	if got, err := s.Endpoint(without.ID); err != nil || got.CNI != nil {
		t.Errorf("endpoint without a CNI identity read back with %+v (%v)", got.CNI, err)
	}
}
