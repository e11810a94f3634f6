package docker

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/engine/enginetest"
	"github.com/mvlan/mvlan/plugin"
)

// fakeDockerd answers GET /networks/ID from names (404 for the others),
// on a unix socket: the decisions around dockerd's answers, without
// root; TestDockerd/DockerNames in cmd/mvlan runs them with a real dockerd.
type fakeDockerd struct {
	mu    sync.Mutex
	names map[string]string
	sock  string
}

func newFakeDockerd(t *testing.T) *fakeDockerd {
	f := &fakeDockerd{names: map[string]string{}, sock: filepath.Join(t.TempDir(), "docker.sock")}
	l, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strings.CutPrefix(r.URL.Path, "/networks/")
		f.mu.Lock()
		name, ok := f.names[id]
		f.mu.Unlock()
		if !ok {
			http.Error(w, `{"message":"network not found"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"Name": name, "Id": id})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeDockerd) set(id, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == "" {
		delete(f.names, id)
		return
	}
	f.names[id] = name
}

// TestNetworkNames: a Docker network takes dockerd's name for it once
// dockerd knows it; -o name= stays; a name another network has is not
// taken; a network dockerd renamed is renamed on start; one dockerd does
// not know keeps its name.
func TestNetworkNames(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := enginetest.New("eth0", "eth1", "eth2", "eth3")
	dir := t.TempDir()
	fd := newFakeDockerd(t)
	start := func(ctx context.Context) (*Driver, *engine.Engine) {
		eng, err := k.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		d, err := New(eng, "unix://"+fd.sock, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		d.Start(ctx)
		return d, eng
	}
	ctx1, stop1 := context.WithCancel(ctx)
	d, eng := start(ctx1)
	if _, err := eng.CreateNetwork(ctx, api.NetworkCreate{Name: "pub_net", Subnets: []string{"10.0.9.0/24"}}); err != nil {
		t.Fatal(err)
	}
	ids := []string{strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64), strings.Repeat("d", 64)}
	create := func(id, parent, subnet string, opts map[string]string) {
		t.Helper()
		opts["parent"] = parent
		p := netip.MustParsePrefix(subnet)
		if err := d.DockerCreateNetwork(ctx, plugin.Network{ID: id, Options: opts,
			Pools: []plugin.Pool{{Subnet: p, Gateway: p.Addr().Next()}}}); err != nil {
			t.Fatal(err)
		}
	}
	// dockerd answers 404 at first (it stores the network after the driver).
	create(ids[0], "eth0", "10.0.0.0/24", map[string]string{})
	time.Sleep(150 * time.Millisecond)
	fd.set(ids[0], "mynet")
	create(ids[1], "eth1", "10.0.1.0/24", map[string]string{"name": "given"})
	fd.set(ids[1], "docker_given")
	fd.set(ids[2], "pub_net") // the operator's network has that name
	create(ids[2], "eth2", "10.0.2.0/24", map[string]string{})
	create(ids[3], "eth3", "10.0.3.0/24", map[string]string{}) // dockerd never knows it
	pub, _ := eng.Network("pub_net")
	want := map[string]string{pub.ID: "pub_net/", ids[0]: "mynet/dockerd", ids[1]: "given/", ids[2]: ids[2][:12] + "/docker-id", ids[3]: ids[3][:12] + "/docker-id"}
	waitNames(t, eng, want)

	// Renamed in dockerd: the next start follows; the clash stays.
	stop1()
	eng.Close()
	fd.set(ids[0], "renamed")
	_, eng = start(ctx)
	want[ids[0]] = "renamed/dockerd"
	waitNames(t, eng, want)
	eng.Close()
}

// waitNames waits (up to 5 s) until the networks are named as in want
// (ID: NAME/NAME_FROM).
func waitNames(t *testing.T, eng *engine.Engine, want map[string]string) {
	t.Helper()
	var got map[string]string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		nets, err := eng.Networks()
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]string{}
		for _, n := range nets {
			got[n.ID] = n.Name + "/" + n.NameFrom
		}
		if equal(got, want) {
			return
		}
	}
	t.Fatalf("network names after 5s:\n got %v\nwant %v", got, want)
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
