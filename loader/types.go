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

// maxNetworks bounds network ids (MAX_NETWORKS): net_stats is an array.
const maxNetworks = 4096

type epInfo struct {
	MAC       [6]byte
	N4, N6    uint8
	NetworkID uint32
	Flags     Allow
	IP4       [maxV4][4]byte
	IP6       [maxV6][16]byte
}

type macKey struct {
	MAC [6]byte
	Pad uint16
}

type macInfo struct {
	NetworkID uint32
	Pad       uint32
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

type netVLANKey struct {
	NetworkID uint32
	VID       uint16
	Pad       uint16
}

type floodKey struct {
	NetworkID uint32
	VID       uint16
	Kind      uint8
	Dir       uint8
}

type dropKey struct {
	NetworkID uint32
	Reason    uint32
}
