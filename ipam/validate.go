package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// checkSubnet rejects an invalid or unmasked subnet.
func checkSubnet(what string, p netip.Prefix) error {
	if !p.IsValid() {
		return configErr("%s is missing or not a valid prefix; give it as ADDRESS/BITS, e.g. 172.16.86.0/24", what)
	}
	if p != p.Masked() {
		return configErr("%s %s has host bits set; did you mean %s?", what, p, p.Masked())
	}
	return nil
}

// The widest subnets a network may have: a macvlan network is one layer-2
// segment, and a wider prefix is not one (::/0 or 0.0.0.0/0 would also put
// a route to every address on the container's link).
const (
	WidestV4 = 8  // bits: 10.0.0.0/8 is accepted, 10.0.0.0/7 is not
	WidestV6 = 32 // bits: 2001:db8::/32 is accepted, 2001:db8::/31 is not
)

// checkSubnetSize rejects a subnet that leaves no address for a container
// (/32, /128: its one address is the gateway) or is wider than WidestV4 or
// WidestV6. A /31 or /127 is a point-to-point link (RFC 3021, RFC 6164):
// both addresses are usable, the gateway and one container.
func checkSubnetSize(p netip.Prefix) error {
	switch {
	case hostBits(p) == 0:
		return configErr("subnet %s has a single address, which the gateway takes, leaving none for a container; "+
			"use a /%d (point-to-point: the gateway and one container) or wider", p, p.Bits()-1)
	case p.Addr().Is4() && p.Bits() < WidestV4:
		return configErr("subnet %s is wider than /%d: a network is one layer-2 segment (and a subnet route "+
			"that wide covers most of the Internet); give the segment's own prefix, e.g. 172.16.86.0/24", p, WidestV4)
	case p.Addr().Is6() && p.Bits() < WidestV6:
		return configErr("subnet %s is wider than /%d: a network is one layer-2 segment (and a subnet route "+
			"that wide covers most of the Internet); give the segment's own prefix, e.g. 2001:db8:abc8::/64", p, WidestV6)
	}
	return nil
}

// specialBlocks are the address blocks no subnet of a network may overlap:
// a container given one of their addresses cannot use it on the wire (the
// kernel drops the traffic as martian, or never sends it), so every
// attach would fail or give an address that does not work. IPv4
// link-local (169.254/16) is not among them: a network may use it, as
// Docker's macvlan networks may. IPv6 link-local is: the kernel gives
// every link an address of fe80::/64 itself, and mvlan leaves those
// addresses to it (link.Addrs does not list them).
var specialBlocks = []struct {
	block netip.Prefix
	what  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" addresses (0.0.0.0/8), which no host may have`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback addresses (127.0.0.0/8), which never leave a host"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast addresses (224.0.0.0/4), which name groups, not hosts"},
	{netip.MustParsePrefix("::/127"), "the unspecified and loopback addresses (::, ::1), which no host has on a link"},
	{netip.MustParsePrefix("fe80::/10"), "IPv6 link-local addresses (fe80::/10), which the kernel gives every link itself"},
	{netip.MustParsePrefix("ff00::/8"), "multicast addresses (ff00::/8), which name groups, not hosts"},
}

// checkSubnetUse rejects a subnet that overlaps one of specialBlocks,
// naming the subnet, the block and an example of what would do. Pair
// checks it, not New: a network stored before it was refused still loads
// (and can be removed).
func checkSubnetUse(p netip.Prefix) error {
	for _, b := range specialBlocks {
		if !b.block.Overlaps(p) {
			continue
		}
		eg := "172.16.86.0/24"
		if p.Addr().Is6() {
			eg = "2001:db8:abc8::/64 or a unique local fd00::/8 prefix"
		}
		return configErr("subnet %s holds %s; give the segment's unicast prefix, e.g. %s", p, b.what, eg)
	}
	return nil
}

// checkAddr rejects an invalid or zoned address named what.
func checkAddr(what string, a netip.Addr) error {
	if !a.IsValid() {
		return configErr("%s has no valid address", what)
	}
	if a.Zone() != "" {
		return configErr("%s %s has a zone; give it as %s", what, a, a.WithZone(""))
	}
	return nil
}

func checkGateway(c *PoolConfig) error {
	gw := c.Gateway
	if !gw.IsValid() {
		return nil
	}
	if err := checkAddr("gateway", gw); err != nil {
		return err
	}
	if !c.Subnet.Contains(gw) {
		return configErr("gateway %s is outside subnet %s; give an address inside it, e.g. %s",
			gw, c.Subnet, InferGateway(c.Subnet))
	}
	if kind := reservedKind(c.Subnet, gw); kind != "" {
		return configErr("gateway %s is %s of %s; use a host address such as %s or leave the gateway out",
			gw, kind, c.Subnet, InferGateway(c.Subnet))
	}
	return nil
}

func checkRange(c *PoolConfig) error {
	r := c.IPRange
	if r == (netip.Prefix{}) {
		return nil
	}
	if err := checkSubnet("ip-range", r); err != nil {
		return err
	}
	if contains(r, c.Subnet) && r != c.Subnet {
		return configErr("ip-range %s is larger than its subnet %s; give a range inside the subnet, at most %s",
			r, c.Subnet, c.Subnet)
	}
	if !contains(c.Subnet, r) {
		return configErr("ip-range %s is outside subnet %s; give a range inside it", r, c.Subnet)
	}
	return nil
}

// checkAux validates the aux-addresses of one pool; names collects the
// names seen over all pools.
func checkAux(c *PoolConfig, names map[string]bool) error {
	keys := make([]string, 0, len(c.Aux))
	for k := range c.Aux {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	byAddr := make(map[netip.Addr]string, len(keys))
	for _, name := range keys {
		a := c.Aux[name]
		if err := checkAuxName(name); err != nil {
			return err
		}
		if names[name] {
			return configErr("aux-address name %q is used twice; give each reservation its own name", name)
		}
		names[name] = true
		if err := checkAddr("aux-address "+name, a); err != nil {
			return err
		}
		if !c.Subnet.Contains(a) {
			return configErr("aux-address %s=%s is outside subnet %s; give an address inside it", name, a, c.Subnet)
		}
		if kind := reservedKind(c.Subnet, a); kind != "" {
			return configErr("aux-address %s=%s is %s of %s, which is never assigned anyway; give a host address",
				name, a, kind, c.Subnet)
		}
		if other, ok := byAddr[a]; ok {
			return configErr("aux-addresses %s and %s both reserve %s; give each name its own address", other, name, a)
		}
		byAddr[a] = name
	}
	return nil
}

// checkAuxGateway refuses an aux-address that is its pool's gateway,
// given or inferred, as Docker does ("failed to allocate secondary ip
// address (h:10.0.0.1): Address already in use"). Only Pair checks it:
// New loads networks stored before it was refused, which work as they
// are (the address is reserved either way).
func checkAuxGateway(c *PoolConfig) error {
	gw, how := c.Gateway, "its --gateway"
	if !gw.IsValid() {
		gw, how = InferGateway(c.Subnet), "inferred: no --gateway was given"
	}
	for _, name := range slices.Sorted(maps.Keys(c.Aux)) {
		if c.Aux[name] == gw {
			return configErr("aux-address %s=%s is the gateway of %s (%s), which is reserved already; "+
				"give the aux-address another address, or leave it out", name, gw, c.Subnet, how)
		}
	}
	return nil
}

func checkAuxName(name string) error {
	if name == "" {
		return configErr("aux-address with an empty name; give it as NAME=ADDRESS, e.g. exclude_host=172.16.86.250")
	}
	if strings.ContainsAny(name, "= \t\n") {
		return configErr("aux-address name %q contains '=' or white space; use a plain name such as exclude_host", name)
	}
	return nil
}

// validate checks every rule on a set of pools: each pool on its own, then
// no two subnets overlapping and aux names unique over the network.
func validate(pools []PoolConfig) error {
	names := make(map[string]bool)
	for i := range pools {
		c := &pools[i]
		if err := checkSubnet("subnet", c.Subnet); err != nil {
			return err
		}
		if err := checkSubnetSize(c.Subnet); err != nil {
			return err
		}
		if err := checkGateway(c); err != nil {
			return err
		}
		if err := checkRange(c); err != nil {
			return err
		}
		if err := checkAux(c, names); err != nil {
			return err
		}
		if err := checkRangeRoom(c); err != nil {
			return err
		}
	}
	return checkOverlap(pools)
}

// checkRangeRoom refuses an ip-range whose every address is one the pool
// never hands out (the network, broadcast, gateway or aux addresses): a
// container without --ip would find none, and be told to remove one.
func checkRangeRoom(c *PoolConfig) error {
	r := c.IPRange
	if !r.IsValid() || hostBits(r) > 8 { // over 256 addresses: not looked at (aux addresses filling one that large are not)
		return nil
	}
	gw := c.Gateway
	if !gw.IsValid() {
		gw = InferGateway(c.Subnet)
	}
	why := map[netip.Addr]string{gw: "the gateway"}
	for _, a := range []netip.Addr{c.Subnet.Addr(), lastAddr(c.Subnet)} {
		if kind := reservedKind(c.Subnet, a); kind != "" {
			why[a] = kind
		}
	}
	for name, a := range c.Aux {
		why[a] = "aux-address " + name
	}
	var held []string
	for a, w := range why {
		if r.Contains(a) {
			held = append(held, a.String()+" ("+w+")")
		}
	}
	if len(held) < 1<<hostBits(r) {
		return nil
	}
	slices.Sort(held)
	return &ConfigError{Msg: fmt.Sprintf("ip-range %s has no address to hand out: %s; widen it or move it", r, strings.Join(held, ", ")), also: ErrNoRoom}
}

func checkOverlap(pools []PoolConfig) error {
	for i := range pools {
		for j := range i {
			a, b := pools[j].Subnet, pools[i].Subnet
			if a == b {
				return configErr("subnet %s is given twice; give each subnet once", a)
			}
			if a.Overlaps(b) {
				return configErr("subnets %s and %s overlap; subnets of one network must be disjoint", a, b)
			}
		}
	}
	return nil
}
