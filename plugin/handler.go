package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Handler serves both protocols for b on one HTTP handler (the plugin
// socket). log may be nil.
func Handler(b Backend, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, log: log}
	mux := http.NewServeMux()
	handle := func(path string, fn http.HandlerFunc) { mux.HandleFunc("POST "+path, fn) }
	handle("/Plugin.Activate", reply(h, "Plugin.Activate", func(context.Context, struct{}) (any, error) {
		return activateResponse{Implements: []string{"NetworkDriver", "IpamDriver"}}, nil
	}))

	nd := networkDriverPrefix
	handle(nd+"GetCapabilities", reply(h, "GetCapabilities", func(context.Context, struct{}) (any, error) {
		return capabilitiesResponse{Scope: "local", ConnectivityScope: "local"}, nil
	}))
	handle(nd+"CreateNetwork", reply(h, "CreateNetwork", h.createNetwork))
	handle(nd+"DeleteNetwork", reply(h, "DeleteNetwork", func(ctx context.Context, r networkRequest) (any, error) {
		return empty{}, b.DockerDeleteNetwork(ctx, r.NetworkID)
	}))
	handle(nd+"AllocateNetwork", reply(h, "AllocateNetwork", func(context.Context, struct{}) (any, error) {
		return allocateNetworkResponse{Options: map[string]string{}}, nil // swarm only: nothing to allocate
	}))
	handle(nd+"FreeNetwork", reply(h, "FreeNetwork", noop))
	handle(nd+"CreateEndpoint", reply(h, "CreateEndpoint", h.createEndpoint))
	handle(nd+"DeleteEndpoint", reply(h, "DeleteEndpoint", func(ctx context.Context, r endpointRequest) (any, error) {
		return empty{}, b.DockerDeleteEndpoint(ctx, r.NetworkID, r.EndpointID)
	}))
	handle(nd+"EndpointOperInfo", reply(h, "EndpointOperInfo", func(context.Context, endpointRequest) (any, error) {
		return operInfoResponse{Value: map[string]any{}}, nil
	}))
	handle(nd+"Join", reply(h, "Join", h.join))
	handle(nd+"Leave", reply(h, "Leave", func(ctx context.Context, r endpointRequest) (any, error) {
		return empty{}, b.DockerLeave(ctx, r.NetworkID, r.EndpointID)
	}))
	// macvlan endpoints are on the physical network: no NAT, no port maps.
	handle(nd+"ProgramExternalConnectivity", reply(h, "ProgramExternalConnectivity", noop))
	handle(nd+"RevokeExternalConnectivity", reply(h, "RevokeExternalConnectivity", noop))
	handle(nd+"DiscoverNew", reply(h, "DiscoverNew", noop))
	handle(nd+"DiscoverDelete", reply(h, "DiscoverDelete", noop))

	id := ipamDriverPrefix
	handle(id+"GetCapabilities", reply(h, "IpamDriver.GetCapabilities", func(context.Context, struct{}) (any, error) {
		// The agent keeps its pools and addresses itself: no replay needed.
		return ipamCapabilitiesResponse{}, nil
	}))
	handle(id+"GetDefaultAddressSpaces", reply(h, "GetDefaultAddressSpaces", func(context.Context, struct{}) (any, error) {
		return addressSpacesResponse{LocalDefaultAddressSpace: AddressSpace, GlobalDefaultAddressSpace: AddressSpace}, nil
	}))
	handle(id+"RequestPool", reply(h, "RequestPool", h.requestPool))
	handle(id+"ReleasePool", reply(h, "ReleasePool", func(ctx context.Context, r releasePoolRequest) (any, error) {
		return empty{}, b.DockerReleasePool(ctx, r.PoolID)
	}))
	handle(id+"RequestAddress", reply(h, "RequestAddress", h.requestAddress))
	handle(id+"ReleaseAddress", reply(h, "ReleaseAddress", h.releaseAddress))
	handle(id+"DiscoverNew", reply(h, "IpamDriver.DiscoverNew", noop))
	handle(id+"DiscoverDelete", reply(h, "IpamDriver.DiscoverDelete", noop))
	return mux
}

type handler struct {
	b   Backend
	log *slog.Logger
}

// empty is the {} of a plain success.
type empty struct{}

func noop(context.Context, struct{}) (any, error) { return empty{}, nil }

// reply decodes the request into Req, runs fn and writes its answer: 400
// for a body that is not JSON of the right shape, 500 and {"Err": ...} for
// an error (Docker's plugin client reads Err from any non-200 answer of
// either protocol; a 200 answer's error field is Err for the network
// driver but Error for IPAM).
func reply[Req any](h *handler, method string, fn func(context.Context, Req) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := decode(r, &req); err != nil {
			h.log.Warn("docker plugin: bad request", "method", method, "err", err)
			write(w, http.StatusBadRequest, errResponse{Err: fmt.Sprintf("%s: %v", method, err)})
			return
		}
		resp, err := fn(r.Context(), req)
		if err != nil {
			h.log.Warn("docker plugin: request failed", "method", method, "err", err)
			write(w, http.StatusInternalServerError, errResponse{Err: err.Error()})
			return
		}
		h.log.Debug("docker plugin", "method", method)
		write(w, http.StatusOK, resp)
	}
}

// decode reads a JSON body; an empty body or null leaves v as it is
// (Docker sends null for the methods without arguments).
func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil
	}
	return json.Unmarshal(data, v)
}

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *handler) createNetwork(ctx context.Context, r createNetworkRequest) (any, error) {
	n := Network{ID: r.NetworkID, Options: map[string]string{}}
	if r.NetworkID == "" {
		return nil, fmt.Errorf("CreateNetwork without a NetworkID")
	}
	var err error
	if n.Options, err = stringMap(r.Options[genericOptions]); err != nil {
		return nil, fmt.Errorf("driver options: %w", err)
	}
	if n.IPv6, err = flag(r.Options[enableIPv6Option]); err != nil {
		return nil, fmt.Errorf("%s: %w", enableIPv6Option, err)
	}
	if n.Internal, err = flag(r.Options[internalOption]); err != nil {
		return nil, fmt.Errorf("%s: %w", internalOption, err)
	}
	for _, d := range slices.Concat(r.IPv4Data, r.IPv6Data) {
		p, err := parsePool(d)
		if err != nil {
			return nil, err
		}
		n.Pools = append(n.Pools, p)
	}
	return empty{}, h.b.DockerCreateNetwork(ctx, n)
}

func parsePool(d ipamData) (Pool, error) {
	p := Pool{AddressSpace: d.AddressSpace}
	var err error
	if p.Subnet, err = netip.ParsePrefix(d.Pool); err != nil {
		return p, fmt.Errorf("pool %q: %w", d.Pool, err)
	}
	if d.Gateway != "" {
		if p.Gateway, err = addrOf(d.Gateway); err != nil {
			return p, fmt.Errorf("gateway of pool %s: %w", d.Pool, err)
		}
	}
	for name, s := range d.AuxAddresses {
		a, err := addrOf(s)
		if err != nil {
			return p, fmt.Errorf("aux-address %s of pool %s: %w", name, d.Pool, err)
		}
		if p.Aux == nil {
			p.Aux = map[string]netip.Addr{}
		}
		p.Aux[name] = a
	}
	return p, nil
}

// addrOf parses an address given as "A.B.C.D/NN" (as libnetwork sends
// gateways and aux-addresses) or "A.B.C.D".
func addrOf(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

// stringMap reads Docker's map of driver options.
func stringMap(v any) (map[string]string, error) {
	out := map[string]string{}
	switch m := v.(type) {
	case nil:
	case map[string]any:
		for k, x := range m {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("option %s is %T, want a string", k, x)
			}
			out[k] = s
		}
	default:
		return nil, fmt.Errorf("want a map of strings, got %T", v)
	}
	return out, nil
}

// flag reads a boolean option, which older Dockers may send as a string.
func flag(v any) (bool, error) {
	switch b := v.(type) {
	case nil:
		return false, nil
	case bool:
		return b, nil
	case string:
		return strconv.ParseBool(b)
	}
	return false, fmt.Errorf("want a boolean, got %T", v)
}

func (h *handler) createEndpoint(ctx context.Context, r createEndpointRequest) (any, error) {
	e := Endpoint{NetworkID: r.NetworkID, ID: r.EndpointID}
	if r.Interface != nil {
		for _, s := range []string{r.Interface.Address, r.Interface.AddressIPv6} {
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("endpoint address %q: %w", s, err)
			}
			e.Addrs = append(e.Addrs, p)
		}
		e.MAC = r.Interface.MacAddress
	}
	mac, err := h.b.DockerCreateEndpoint(ctx, e)
	if err != nil {
		return nil, err
	}
	if e.MAC != "" || mac == "" {
		return createEndpointResponse{}, nil
	}
	return createEndpointResponse{Interface: &endpointInterface{MacAddress: mac}}, nil
}

func (h *handler) join(ctx context.Context, r joinRequest) (any, error) {
	j, err := h.b.DockerJoin(ctx, r.NetworkID, r.EndpointID, r.SandboxKey)
	if err != nil {
		return nil, err
	}
	resp := joinResponse{InterfaceName: &interfaceName{SrcName: j.SrcName, DstPrefix: "eth"}, DisableGatewayService: true}
	if j.Gateway.IsValid() {
		resp.Gateway = j.Gateway.String()
	}
	if j.GatewayIPv6.IsValid() {
		resp.GatewayIPv6 = j.GatewayIPv6.String()
	}
	return resp, nil
}

func (h *handler) requestPool(ctx context.Context, r requestPoolRequest) (any, error) {
	p := PoolRequest{AddressSpace: r.AddressSpace, Options: r.Options, V6: r.V6}
	var err error
	if r.Pool != "" {
		if p.Pool, err = netip.ParsePrefix(r.Pool); err != nil {
			return nil, fmt.Errorf("subnet %q: %w", r.Pool, err)
		}
	}
	if r.SubPool != "" {
		if p.SubPool, err = netip.ParsePrefix(r.SubPool); err != nil {
			return nil, fmt.Errorf("ip-range %q: %w", r.SubPool, err)
		}
	}
	id, err := h.b.DockerRequestPool(ctx, p)
	if err != nil {
		return nil, err
	}
	return requestPoolResponse{PoolID: id, Pool: p.Pool.String(), Data: map[string]string{}}, nil
}

func (h *handler) requestAddress(ctx context.Context, r requestAddressRequest) (any, error) {
	a := AddressRequest{PoolID: r.PoolID, Gateway: r.Options[requestAddressType] == gatewayAddressType}
	if r.Address != "" {
		var err error
		if a.Address, err = netip.ParseAddr(r.Address); err != nil {
			return nil, fmt.Errorf("address %q: %w", r.Address, err)
		}
	}
	p, err := h.b.DockerRequestAddress(ctx, a)
	if err != nil {
		return nil, err
	}
	return requestAddressResponse{Address: p.String(), Data: map[string]string{}}, nil
}

func (h *handler) releaseAddress(ctx context.Context, r releaseAddressRequest) (any, error) {
	a, err := netip.ParseAddr(r.Address)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", r.Address, err)
	}
	return empty{}, h.b.DockerReleaseAddress(ctx, r.PoolID, a)
}
