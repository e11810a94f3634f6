package engine_test

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/link"
)

// TestStartSettlesIntents: an attach to someone else's namespace leaves
// an intent while its record commits. On start, an intent whose record
// never reached the disk has its link undone (the address is free again);
// one whose record did is only dropped (the endpoint stays); one that
// cannot be read is dropped. No intent is left after a start, nor after
// an attach that finished.
func TestStartSettlesIntents(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	lost, kept, half := r.connect("lost"), r.connect("kept"), r.connect("half")
	dir := filepath.Join(r.dir, "intents")
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("intents after three finished attaches: %v; want none", left)
	}
	r.stop()
	st, err := store.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []api.Endpoint{lost, half} { // their commits never finished
		if err := st.DeleteEndpoint(ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, ep := range []api.Endpoint{lost, kept, half} {
		writeIntent(t, dir, ep.ID, ep)
	}
	// half's link as a kill before its mark leaves it: its name and MAC,
	// no alias.
	r.k.RemoveNetnsLink(half.Netns, "eth0")
	mac, _ := net.ParseMAC(half.MAC)
	r.k.AddHostLink(link.Info{Name: "born0", Kind: "macvlan", MAC: mac})
	if err := r.k.MoveHostLink("born0", half.Netns, "eth0", nil); err != nil {
		t.Fatal(err)
	}
	writeIntent(t, dir, "0123456789ab", "half written")
	r.start()
	if got := r.endpoints(); len(got) != 1 || got["kept"] != "ready" {
		t.Fatalf("endpoints after restart: %v; want kept only", got)
	}
	for _, ep := range []api.Endpoint{lost, half} {
		if ls := r.k.NetnsLinks(ep.Netns); len(ls) != 0 {
			t.Fatalf("links left in the namespace of the unstored attach %s: %+v", ep.Name, ls)
		}
	}
	if ls := r.k.NetnsLinks(kept.Netns); len(ls) != 1 || ls[0].Index != kept.Ifindex {
		t.Fatalf("links of the stored endpoint: %+v; want its eth0 as it was (ifindex %d)", ls, kept.Ifindex)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("intents after the start: %v; want none", left)
	}
	r.noDrift()
	if next := r.connect("next"); next.Addrs[0] != lost.Addrs[0] {
		t.Fatalf("next endpoint got %v, want the undone attach's %v", next.Addrs, lost.Addrs)
	}
}

// connect attaches a namespace of someone else's, made for it, to pub.
func (r *rig) connect(name string) api.Endpoint {
	r.t.Helper()
	path := "/run/netns/other-" + name
	r.k.AddNetns(path)
	ep, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Name: name, Netns: path})
	if err != nil {
		r.t.Fatalf("connect %s: %v", name, err)
	}
	return ep
}

func writeIntent(t *testing.T, dir, id string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestIntentFailureLeavesNothing: when its intent cannot be written (the
// state directory's intents/ is a file here), a connect fails before any
// link is made and holds no address.
func TestIntentFailureLeavesNothing(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	dir := filepath.Join(r.dir, "intents")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := "/run/netns/other-c1"
	r.k.AddNetns(path)
	_, err := r.e.CreateEndpoint(context.Background(), api.EndpointCreate{Network: "pub", Name: "c1", Netns: path})
	if err == nil || !strings.Contains(err.Error(), "intent of c1") {
		t.Fatalf("connect with intents/ a file: %v; want the intent's error", err)
	}
	if ls := r.k.NetnsLinks(path); len(ls) != 0 {
		t.Fatalf("links after the failed connect: %+v", ls)
	}
	if got := r.endpoints(); len(got) != 0 {
		t.Fatalf("endpoints after the failed connect: %v", got)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	c := r.connect("c2")
	if want := netip.MustParsePrefix("172.16.86.2/24"); c.Addrs[0] != want {
		t.Fatalf("next connect got %v; want %v, the first address, unheld", c.Addrs, want)
	}
}

// TestStartKeepsIntentsOfLostRecords: while the state may have lost
// records (here one is quarantined), an intent without a record is kept
// and its link left alone, as marked links are then.
func TestStartKeepsIntentsOfLostRecords(t *testing.T) {
	r := newRig(t, "eth0")
	r.network("pub", "subnet=172.16.86.0/24", "parent=eth0")
	held := r.connect("held")
	r.stop()
	st, err := store.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.QuarantineEndpoint(held.ID, "test: unreadable"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	dir := filepath.Join(r.dir, "intents")
	writeIntent(t, dir, held.ID, held)
	r.start()
	if ls := r.k.NetnsLinks(held.Netns); len(ls) != 1 {
		t.Fatalf("links of the quarantined endpoint: %+v; want its eth0 kept", ls)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("intents after the start: %v; want the quarantined endpoint's kept", left)
	}
}
