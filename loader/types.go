package loader

// Go mirrors of the map keys and values of bpf/include/mvlan.h. Field order,
// sizes and explicit padding match the C structs byte for byte (checked by
// TestLayouts against the BTF of the objects).

const (
	hookEpEgress      = 0
	hookEpIngress     = 1
	hookParentIngress = 2
	hookParentEgress  = 3
	hookCount         = 4
)

const (
	familyV4 = 4
	familyV6 = 6
)

type epKey struct {
	NetnsCookie uint64
	Ifindex     uint32
	Pad         uint32
}

// Inline address slots of an endpoint (EP_MAX_V4, EP_MAX_V6).
const (
	maxV4 = 2
	maxV6 = 4
)

// Limits the maps are sized for (bpf/include/mvlan.h).
const (
	// maxNetworks bounds network ids (MAX_NETWORKS): net_stats is an array.
	maxNetworks = 4096
	// MaxEndpoints is how many endpoints the tables hold (MAX_ENDPOINTS).
	MaxEndpoints = 8192
	// MaxParents is how many parents the parents table holds (MAX_PARENTS).
	MaxParents = maxNetworks
	// MaxVLANCounters is how many (link, VLAN) counters vlan_stats holds
	// (MAX_VLAN_COUNTERS): every VLAN of two full trunks.
	MaxVLANCounters = 16384
)

// MaxNetworkID is the highest network id the datapath numbers.
const MaxNetworkID = maxNetworks - 1

type epInfo struct {
	MAC       [6]byte
	N4, N6    uint8
	NetworkID uint32
	Flags     Allow
	IP4       [maxV4][4]byte
	IP6       [maxV6][16]byte
	// Ifindex and NetnsCookie are its ep_table key, Slot its index in the
	// endpoints array.
	Ifindex     uint32
	Slot        uint32
	NetnsCookie uint64
}

// WireMark is the skb->mark bit parent_ingress sets on frames from the
// wire for local endpoints and ep_ingress clears (WIRE_MARK).
const WireMark = 0x00800000

type macKey struct {
	MAC [6]byte
	Pad uint16
}

type ipKey struct {
	Family uint8
	Pad    [3]uint8
	Addr   [16]byte
}

type ipInfo struct {
	MAC       [6]byte
	Pad       uint16
	NetworkID uint32
}

type parentInfo struct {
	NetworkID uint32
	VID       uint16
	Pad       uint16
}

type pbValue struct {
	Packets uint64
	Bytes   uint64
}

type trafficValue struct {
	Rx pbValue
	Tx pbValue
}

type vlanKey struct {
	Ifindex uint32
	VID     uint16
	Pad     uint16
}

// netCounters is net_stats' value (struct net_counters).
type netCounters struct {
	Rx, Tx            pbValue
	Hairpin, EastWest pbValue
	Flood             [2][2]pbValue // [broadcast, multicast][rx, tx]
	Parent            trafficValue  // untagged frames on its parent
}

type dropKey struct {
	NetworkID uint32
	Reason    uint32
}
