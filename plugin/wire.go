package plugin

// The wire types: the JSON bodies of Docker's plugin protocols, with
// libnetwork's field names. Only the fields mvlan reads or answers are here;
// Docker ignores missing answer fields and mvlan ignores unknown request
// fields.

// errResponse is the answer of a request that failed.
type errResponse struct {
	Err string
}

// activateResponse answers Plugin.Activate.
type activateResponse struct {
	Implements []string
}

// capabilitiesResponse answers NetworkDriver.GetCapabilities.
type capabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

// ipamData is one pool of NetworkDriver.CreateNetwork: CIDR strings.
type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

// networkRequest is DeleteNetwork and FreeNetwork.
type networkRequest struct {
	NetworkID string
}

// allocateNetworkResponse answers AllocateNetwork (swarm only).
type allocateNetworkResponse struct {
	Options map[string]string
}

type endpointInterface struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]any
}

// createEndpointResponse sets only what Docker did not give (the MAC):
// libnetwork rejects an answer that changes a field it had set.
type createEndpointResponse struct {
	Interface *endpointInterface `json:",omitempty"`
}

// endpointRequest is DeleteEndpoint, Leave, EndpointOperInfo,
// ProgramExternalConnectivity and RevokeExternalConnectivity.
type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

type operInfoResponse struct {
	Value map[string]any
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

// joinResponse: DisableGatewayService keeps Docker from adding its
// docker_gwbridge to a sandbox whose macvlan network has no gateway.
type joinResponse struct {
	InterfaceName         *interfaceName
	Gateway               string `json:",omitempty"`
	GatewayIPv6           string `json:",omitempty"`
	DisableGatewayService bool
}

type ipamCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type addressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

type releasePoolRequest struct {
	PoolID string
}

type requestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

type requestAddressResponse struct {
	Address string
	Data    map[string]string
}

type releaseAddressRequest struct {
	PoolID  string
	Address string
}

// Docker's names.
const (
	genericOptions      = "com.docker.network.generic"     // driver options (-o)
	enableIPv6Option    = "com.docker.network.enable_ipv6" // --ipv6
	internalOption      = "com.docker.network.internal"    // --internal
	requestAddressType  = "RequestAddressType"             // IpamDriver.RequestAddress option
	gatewayAddressType  = "com.docker.network.gateway"     // ... when Docker asks for the gateway
	contentType         = "application/vnd.docker.plugins.v1.2+json"
	networkDriverPrefix = "/NetworkDriver."
	ipamDriverPrefix    = "/IpamDriver."
)
