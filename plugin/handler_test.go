package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// fake records what the handlers pass and answers what the test set.
type fake struct {
	calls   []string
	network Network
	ep      Endpoint
	pool    PoolRequest
	addr    AddressRequest
	release netip.Addr
	join    [3]string // network, endpoint, sandbox key
	mac     string
	err     error
}

func (f *fake) call(name string) error { f.calls = append(f.calls, name); return f.err }

func (f *fake) DockerCreateNetwork(_ context.Context, n Network) error {
	f.network = n
	return f.call("CreateNetwork")
}
func (f *fake) DockerDeleteNetwork(_ context.Context, id string) error {
	return f.call("DeleteNetwork " + id)
}
func (f *fake) DockerCreateEndpoint(_ context.Context, e Endpoint) (string, error) {
	f.ep = e
	return f.mac, f.call("CreateEndpoint")
}
func (f *fake) DockerJoin(_ context.Context, nid, eid, key string) (Join, error) {
	f.join = [3]string{nid, eid, key}
	return Join{SrcName: "mvtab12cd345678", Gateway: netip.MustParseAddr("172.16.86.1"),
		GatewayIPv6: netip.MustParseAddr("2001:db8:abc8::10")}, f.call("Join")
}
func (f *fake) DockerLeave(_ context.Context, nid, eid string) error {
	return f.call("Leave " + nid + " " + eid)
}
func (f *fake) DockerDeleteEndpoint(_ context.Context, nid, eid string) error {
	return f.call("DeleteEndpoint " + nid + " " + eid)
}
func (f *fake) DockerRequestPool(_ context.Context, p PoolRequest) (string, error) {
	f.pool = p
	return "172.16.86.0/24,172.16.86.248/29", f.call("RequestPool")
}
func (f *fake) DockerReleasePool(_ context.Context, id string) error {
	return f.call("ReleasePool " + id)
}
func (f *fake) DockerRequestAddress(_ context.Context, a AddressRequest) (netip.Prefix, error) {
	f.addr = a
	return netip.MustParsePrefix("172.16.86.1/24"), f.call("RequestAddress")
}
func (f *fake) DockerReleaseAddress(_ context.Context, id string, a netip.Addr) error {
	f.release = a
	return f.call("ReleaseAddress " + id)
}

// post sends body to path and returns the status and the decoded answer.
func post(t *testing.T, h http.Handler, path, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	var out map[string]any
	if rec.Code != http.StatusNotFound {
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: answer %q is not a JSON object: %v", path, rec.Body, err)
		}
	}
	return rec.Code, out
}

// jsonOf decodes a literal as the expected answer.
func jsonOf(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHandshake: what Docker asks on activation, with no body or null.
func TestHandshake(t *testing.T) {
	h := Handler(&fake{}, nil)
	for _, tc := range []struct{ path, body, want string }{
		{"/Plugin.Activate", "", `{"Implements":["NetworkDriver","IpamDriver"]}`},
		{"/NetworkDriver.GetCapabilities", "null", `{"Scope":"local","ConnectivityScope":"local"}`},
		{"/IpamDriver.GetCapabilities", "", `{"RequiresMACAddress":false,"RequiresRequestReplay":false}`},
		{"/IpamDriver.GetDefaultAddressSpaces", "null", `{"LocalDefaultAddressSpace":"mvlan","GlobalDefaultAddressSpace":"mvlan"}`},
		{"/NetworkDriver.EndpointOperInfo", `{"NetworkID":"n","EndpointID":"e"}`, `{"Value":{}}`},
		{"/NetworkDriver.ProgramExternalConnectivity", `{"NetworkID":"n","EndpointID":"e","Options":{}}`, `{}`},
		{"/NetworkDriver.RevokeExternalConnectivity", `{"NetworkID":"n","EndpointID":"e"}`, `{}`},
		{"/NetworkDriver.DiscoverNew", `{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.1","self":true}}`, `{}`},
		{"/NetworkDriver.DiscoverDelete", `{"DiscoveryType":1,"DiscoveryData":{}}`, `{}`},
		{"/NetworkDriver.AllocateNetwork", `{"NetworkID":"n"}`, `{"Options":{}}`},
		{"/NetworkDriver.FreeNetwork", `{"NetworkID":"n"}`, `{}`},
	} {
		code, got := post(t, h, tc.path, tc.body)
		if code != http.StatusOK || !reflect.DeepEqual(got, jsonOf(t, tc.want)) {
			t.Errorf("%s: %d %v, want 200 %s", tc.path, code, got, tc.want)
		}
	}
}

// TestCreateNetwork decodes what dockerd 20.10 sends for the reference's
// pub_net with --aux-address, -o macvlan_mode and --internal.
func TestCreateNetwork(t *testing.T) {
	f := &fake{}
	body := `{"NetworkID":"7dfb0184a465d3a33b7d346292245c61418c5b49f2e2a946e6bca8acc21055ac",
	"Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"macvlan_mode":"bridge","parent":"eth0"},"com.docker.network.internal":true},
	"IPv4Data":[{"AddressSpace":"mvlan","AuxAddresses":{"exclude_host":"172.16.86.250/24"},"Gateway":"172.16.86.1/24","Pool":"172.16.86.0/24"}],
	"IPv6Data":[{"AddressSpace":"mvlan","Gateway":"2001:db8:abc8::10/64","Pool":"2001:db8:abc8::/64"}]}`
	code, got := post(t, Handler(f, nil), "/NetworkDriver.CreateNetwork", body)
	if code != http.StatusOK || len(got) != 0 {
		t.Fatalf("CreateNetwork: %d %v, want 200 {}", code, got)
	}
	want := Network{
		ID:      "7dfb0184a465d3a33b7d346292245c61418c5b49f2e2a946e6bca8acc21055ac",
		Options: map[string]string{"macvlan_mode": "bridge", "parent": "eth0"}, IPv6: true, Internal: true,
		Pools: []Pool{
			{Subnet: netip.MustParsePrefix("172.16.86.0/24"), Gateway: netip.MustParseAddr("172.16.86.1"),
				Aux: map[string]netip.Addr{"exclude_host": netip.MustParseAddr("172.16.86.250")}, AddressSpace: AddressSpace},
			{Subnet: netip.MustParsePrefix("2001:db8:abc8::/64"), Gateway: netip.MustParseAddr("2001:db8:abc8::10"), AddressSpace: AddressSpace},
		},
	}
	if !reflect.DeepEqual(f.network, want) {
		t.Errorf("backend got %+v\nwant %+v", f.network, want)
	}
	code, got = post(t, Handler(f, nil), "/NetworkDriver.DeleteNetwork", `{"NetworkID":"7dfb"}`)
	if code != http.StatusOK || f.calls[len(f.calls)-1] != "DeleteNetwork 7dfb" {
		t.Errorf("DeleteNetwork: %d %v, calls %v", code, got, f.calls)
	}
}

// TestEndpoint: CreateEndpoint answers the MAC only when Docker gave none
// (libnetwork rejects an answer that changes what it set); Join names the
// link to move, the gateways, and turns off Docker's gateway bridge.
func TestEndpoint(t *testing.T) {
	f := &fake{mac: "02:42:ac:10:56:0a"}
	h := Handler(f, nil)
	code, got := post(t, h, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1","EndpointID":"e1",
		"Interface":{"Address":"172.16.86.10/24","AddressIPv6":"2001:db8:abc8::20/64","MacAddress":""},"Options":{}}`)
	if code != http.StatusOK || !reflect.DeepEqual(got, jsonOf(t, `{"Interface":{"MacAddress":"02:42:ac:10:56:0a"}}`)) {
		t.Errorf("CreateEndpoint without a MAC: %d %v", code, got)
	}
	wantEP := Endpoint{NetworkID: "n1", ID: "e1", Addrs: []netip.Prefix{
		netip.MustParsePrefix("172.16.86.10/24"), netip.MustParsePrefix("2001:db8:abc8::20/64")}}
	if !reflect.DeepEqual(f.ep, wantEP) {
		t.Errorf("backend got %+v, want %+v", f.ep, wantEP)
	}
	code, got = post(t, h, "/NetworkDriver.CreateEndpoint", `{"NetworkID":"n1","EndpointID":"e2",
		"Interface":{"Address":"172.16.86.11/24","MacAddress":"02:42:ac:10:56:0b"}}`)
	if code != http.StatusOK || len(got) != 0 || f.ep.MAC != "02:42:ac:10:56:0b" {
		t.Errorf("CreateEndpoint with a MAC: %d %v (backend got MAC %q); want 200 {}", code, got, f.ep.MAC)
	}

	code, got = post(t, h, "/NetworkDriver.Join", `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/aa06ba301bcc",
		"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}`)
	want := `{"InterfaceName":{"SrcName":"mvtab12cd345678","DstPrefix":"eth"},"Gateway":"172.16.86.1",
		"GatewayIPv6":"2001:db8:abc8::10","DisableGatewayService":true}`
	if code != http.StatusOK || !reflect.DeepEqual(got, jsonOf(t, want)) {
		t.Errorf("Join: %d %v, want %s", code, got, want)
	}
	if f.join != [3]string{"n1", "e1", "/var/run/docker/netns/aa06ba301bcc"} {
		t.Errorf("backend Join got %q", f.join)
	}
	for _, m := range []string{"Leave", "DeleteEndpoint"} {
		if code, got := post(t, h, "/NetworkDriver."+m, `{"NetworkID":"n1","EndpointID":"e1"}`); code != http.StatusOK || len(got) != 0 {
			t.Errorf("%s: %d %v", m, code, got)
		}
		if last := f.calls[len(f.calls)-1]; last != m+" n1 e1" {
			t.Errorf("%s: backend call %q", m, last)
		}
	}
}

// TestIPAM: pools with their ip-range and options, the gateway request,
// releases.
func TestIPAM(t *testing.T) {
	f := &fake{}
	h := Handler(f, nil)
	code, got := post(t, h, "/IpamDriver.RequestPool",
		`{"AddressSpace":"mvlan","Pool":"172.16.86.0/24","SubPool":"172.16.86.248/29","Options":{"allocation":"serial"},"V6":false}`)
	if code != http.StatusOK || !reflect.DeepEqual(got, jsonOf(t, `{"PoolID":"172.16.86.0/24,172.16.86.248/29","Pool":"172.16.86.0/24","Data":{}}`)) {
		t.Errorf("RequestPool: %d %v", code, got)
	}
	wantPool := PoolRequest{AddressSpace: "mvlan", Pool: netip.MustParsePrefix("172.16.86.0/24"),
		SubPool: netip.MustParsePrefix("172.16.86.248/29"), Options: map[string]string{"allocation": "serial"}}
	if !reflect.DeepEqual(f.pool, wantPool) {
		t.Errorf("backend got %+v, want %+v", f.pool, wantPool)
	}
	code, got = post(t, h, "/IpamDriver.RequestAddress",
		`{"PoolID":"172.16.86.0/24","Address":"172.16.86.1","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	if code != http.StatusOK || !reflect.DeepEqual(got, jsonOf(t, `{"Address":"172.16.86.1/24","Data":{}}`)) {
		t.Errorf("RequestAddress: %d %v", code, got)
	}
	if want := (AddressRequest{PoolID: "172.16.86.0/24", Address: netip.MustParseAddr("172.16.86.1"), Gateway: true}); f.addr != want {
		t.Errorf("backend got %+v, want %+v", f.addr, want)
	}
	post(t, h, "/IpamDriver.RequestAddress", `{"PoolID":"172.16.86.0/24","Address":"","Options":null}`)
	if f.addr.Address.IsValid() || f.addr.Gateway {
		t.Errorf("a request for any address reached the backend as %+v", f.addr)
	}
	if code, _ := post(t, h, "/IpamDriver.ReleaseAddress", `{"PoolID":"p1","Address":"172.16.86.10"}`); code != http.StatusOK ||
		f.release != netip.MustParseAddr("172.16.86.10") || f.calls[len(f.calls)-1] != "ReleaseAddress p1" {
		t.Errorf("ReleaseAddress: %d, backend got %v %v", code, f.release, f.calls)
	}
	if code, _ := post(t, h, "/IpamDriver.ReleasePool", `{"PoolID":"p1"}`); code != http.StatusOK || f.calls[len(f.calls)-1] != "ReleasePool p1" {
		t.Errorf("ReleasePool: %d, calls %v", code, f.calls)
	}
}

// TestErrors: a failure is 500 with Err (Docker shows it), a body that is
// not the request is 400, an unknown method 404.
func TestErrors(t *testing.T) {
	f := &fake{err: errors.New("parent eth9 not found")}
	h := Handler(f, nil)
	for _, path := range []string{"/NetworkDriver.CreateNetwork", "/IpamDriver.RequestPool"} {
		body := `{"NetworkID":"n","Pool":"10.0.0.0/24"}`
		code, got := post(t, h, path, body)
		if code != http.StatusInternalServerError || !reflect.DeepEqual(got, map[string]any{"Err": "parent eth9 not found"}) {
			t.Errorf("%s failing: %d %v", path, code, got)
		}
	}
	code, got := post(t, h, "/NetworkDriver.Join", `{"NetworkID":`)
	if code != http.StatusBadRequest || got["Err"] == "" {
		t.Errorf("bad JSON: %d %v", code, got)
	}
	code, got = post(t, h, "/IpamDriver.RequestAddress", `{"PoolID":"p","Address":"not-an-ip"}`)
	if code != http.StatusInternalServerError || !strings.Contains(got["Err"].(string), "not-an-ip") {
		t.Errorf("bad address: %d %v", code, got)
	}
	if code, _ := post(t, h, "/NetworkDriver.Nonexistent", `{}`); code != http.StatusNotFound {
		t.Errorf("unknown method: %d, want 404", code)
	}
	if len(f.calls) != 2 {
		t.Errorf("backend calls %v: requests that failed to decode reached it", f.calls)
	}
}
