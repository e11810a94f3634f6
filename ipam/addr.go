package ipam

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
)

// u128 is an address as a 128-bit unsigned integer (IPv4 in the low 32 bits).
type u128 struct{ hi, lo uint64 }

func fromAddr(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func toAddr(u u128, v6 bool) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(u.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

func (u u128) add64(n uint64) u128 {
	lo, c := bits.Add64(u.lo, n, 0)
	return u128{u.hi + c, lo}
}

func (u u128) sub(v u128) u128 {
	lo, b := bits.Sub64(u.lo, v.lo, 0)
	hi, _ := bits.Sub64(u.hi, v.hi, b)
	return u128{hi, lo}
}

func (u u128) or(v u128) u128 { return u128{u.hi | v.hi, u.lo | v.lo} }

// ones returns a u128 with the n lowest bits set (0 <= n <= 128).
func ones(n int) u128 {
	if n >= 64 {
		// A shift by 64 yields 0 in Go, so n == 128 gives all ones.
		return u128{uint64(1)<<uint(n-64) - 1, math.MaxUint64}
	}
	return u128{0, uint64(1)<<uint(n) - 1}
}

// hostBits is the number of host bits of p.
func hostBits(p netip.Prefix) int { return p.Addr().BitLen() - p.Bits() }

// lastAddr is the highest address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	return toAddr(fromAddr(p.Addr()).or(ones(hostBits(p))), p.Addr().Is6())
}

// size is the number of addresses of p, as a float64 (exact up to 2^53).
func size(p netip.Prefix) float64 { return math.Ldexp(1, hostBits(p)) }

// contains reports whether prefix inner lies entirely inside outer.
func contains(outer, inner netip.Prefix) bool {
	return inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

// reservedKind tells whether a is an address of subnet that is never
// assigned by its position alone: the IPv4 network and broadcast addresses
// (not for /31 and /32) and the IPv6 subnet-router anycast address (not for
// /127 and /128, RFC 6164). It returns "" for any other address.
func reservedKind(subnet netip.Prefix, a netip.Addr) string {
	if hostBits(subnet) < 2 {
		return ""
	}
	if a == subnet.Addr() {
		if a.Is6() {
			return "the subnet-router anycast address"
		}
		return "the network address"
	}
	if a.Is4() && a == lastAddr(subnet) {
		return "the broadcast address"
	}
	return ""
}

// ReservedKind is reservedKind for callers outside the package: which of
// subnet's positional addresses a is (the IPv4 network or broadcast
// address, the IPv6 subnet-router anycast address), "" for any other.
func ReservedKind(subnet netip.Prefix, a netip.Addr) string {
	return reservedKind(subnet.Masked(), a)
}

// InferGateway returns the gateway used when none is given: the first usable
// address of the subnet (10.1.100.0/24 -> 10.1.100.1, 10.1.100.128/25 ->
// 10.1.100.129, 2001:db8::/64 -> 2001:db8::1), or the first address of a
// /31, /32, /127 or /128.
func InferGateway(subnet netip.Prefix) netip.Addr {
	if hostBits(subnet) < 2 {
		return subnet.Addr()
	}
	return subnet.Addr().Next()
}
