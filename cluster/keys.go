package cluster

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
)

// addrKey is a's 16-byte form in hex: etcd's key order is address order.
func addrKey(a netip.Addr) string {
	b := a.As16()
	return hex.EncodeToString(b[:])
}

func blocksDir(nw string) string { return prefix + "blocks/" + nw + "/" }
func claimsDir(nw string) string { return prefix + "claims/" + nw + "/" }

func blockKey(nw string, b netip.Prefix) string {
	return blocksDir(nw) + addrKey(b.Addr()) + "-" + strconv.Itoa(b.Bits())
}

func claimKey(nw string, a netip.Addr) string { return claimsDir(nw) + addrKey(a) }

// parseBlockKey is blockKey's inverse (v6: the network's family).
func parseBlockKey(nw, key string, v6 bool) (netip.Prefix, error) {
	s, ok := strings.CutPrefix(key, blocksDir(nw))
	h, bits, ok2 := strings.Cut(s, "-")
	raw, err := hex.DecodeString(h)
	n, err2 := strconv.Atoi(bits)
	if !ok || !ok2 || err != nil || err2 != nil || len(raw) != 16 {
		return netip.Prefix{}, fmt.Errorf("malformed block key %q", key)
	}
	a := netip.AddrFrom16([16]byte(raw))
	if !v6 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, n), nil
}

// claimsRange is the [start, end) of the claim keys inside b.
func claimsRange(nw string, b netip.Prefix) (string, string) {
	last := new(big.Int).Add(addrInt(b.Addr()), new(big.Int).Sub(blockSize(b), big.NewInt(1)))
	return claimKey(nw, b.Addr()), claimKey(nw, intAddr(last, b.Addr().Is6())) + "\x00"
}

func addrInt(a netip.Addr) *big.Int { return new(big.Int).SetBytes(a.AsSlice()) }

func intAddr(i *big.Int, v6 bool) netip.Addr {
	n := 4
	if v6 {
		n = 16
	}
	b := make([]byte, n)
	i.FillBytes(b)
	a, _ := netip.AddrFromSlice(b)
	return a
}

func blockSize(b netip.Prefix) *big.Int {
	return new(big.Int).Lsh(big.NewInt(1), uint(b.Addr().BitLen()-b.Bits()))
}

// blockAt is the i-th block of length bits inside rng.
func blockAt(rng netip.Prefix, bits int, i uint64) netip.Prefix {
	step := new(big.Int).Lsh(big.NewInt(1), uint(rng.Addr().BitLen()-bits))
	a := new(big.Int).Add(addrInt(rng.Addr()), new(big.Int).Mul(step, new(big.Int).SetUint64(i)))
	return netip.PrefixFrom(intAddr(a, rng.Addr().Is6()), bits)
}

// blockIndex is the index of the block of length bits inside rng that
// holds a (which rng contains).
func blockIndex(rng netip.Prefix, bits int, a netip.Addr) uint64 {
	d := new(big.Int).Sub(addrInt(a), addrInt(rng.Addr()))
	return d.Rsh(d, uint(a.BitLen()-bits)).Uint64()
}
