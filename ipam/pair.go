package ipam

import (
	"net/netip"
	"slices"
	"strings"
)

// AuxAddress is one --aux-address NAME=ADDRESS flag.
type AuxAddress struct {
	Name string
	Addr netip.Addr
}

// ParseAuxAddress parses the value of an --aux-address flag, NAME=ADDRESS.
func ParseAuxAddress(s string) (AuxAddress, error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok {
		return AuxAddress{}, configErr("aux-address %q is not NAME=ADDRESS, e.g. exclude_host=172.16.86.250", s)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return AuxAddress{}, configErr("aux-address %q: %q is not an IP address", s, addr)
	}
	if err := checkAuxName(name); err != nil {
		return AuxAddress{}, err
	}
	return AuxAddress{Name: name, Addr: a}, nil
}

// Pair turns Docker-style repeated flags into pools: each gateway, ip-range
// and aux-address goes with the subnet that contains it, and the order of
// the subnets is kept. Gateways not given stay zero (New infers them). The
// aux names are taken in sorted order; see PairList for the flag order.
// It refuses what New refuses, a subnet in a block no host address is in
// (multicast, loopback, ...: checkSubnetUse), and an aux-address that is
// its subnet's gateway, given or inferred.
func Pair(subnets []netip.Prefix, gateways []netip.Addr, ranges []netip.Prefix,
	aux map[string]netip.Addr) ([]PoolConfig, error) {
	list := make([]AuxAddress, 0, len(aux))
	for name, a := range aux {
		list = append(list, AuxAddress{name, a})
	}
	slices.SortFunc(list, func(a, b AuxAddress) int { return strings.Compare(a.Name, b.Name) })
	return PairList(subnets, gateways, ranges, list)
}

// PairList is Pair with the aux-addresses as a list, so that a name given
// twice is reported.
func PairList(subnets []netip.Prefix, gateways []netip.Addr, ranges []netip.Prefix,
	aux []AuxAddress) ([]PoolConfig, error) {
	pools := make([]PoolConfig, len(subnets))
	for i, s := range subnets {
		if err := checkSubnet("subnet", s); err != nil {
			return nil, err
		}
		pools[i].Subnet = s
	}
	if err := checkOverlap(pools); err != nil {
		return nil, err
	}
	for _, g := range gateways {
		if err := pairGateway(pools, subnets, g); err != nil {
			return nil, err
		}
	}
	for _, r := range ranges {
		if err := pairRange(pools, subnets, r); err != nil {
			return nil, err
		}
	}
	if err := pairAux(pools, subnets, aux); err != nil {
		return nil, err
	}
	if err := validate(pools); err != nil {
		return nil, err
	}
	for i := range pools {
		if err := checkSubnetUse(pools[i].Subnet); err != nil {
			return nil, err
		}
		if err := checkAuxGateway(&pools[i]); err != nil {
			return nil, err
		}
	}
	return pools, nil
}

// holder returns the index of the subnet containing a, or -1.
func holder(subnets []netip.Prefix, a netip.Addr) int {
	for i, s := range subnets {
		if s.Contains(a) {
			return i
		}
	}
	return -1
}

func subnetList(subnets []netip.Prefix) string {
	if len(subnets) == 0 {
		return "no subnet given"
	}
	s := make([]string, len(subnets))
	for i, p := range subnets {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func pairGateway(pools []PoolConfig, subnets []netip.Prefix, g netip.Addr) error {
	if err := checkAddr("gateway", g); err != nil {
		return err
	}
	i := holder(subnets, g)
	if i < 0 {
		return configErr("gateway %s is outside every subnet (%s); give a gateway inside one of them",
			g, subnetList(subnets))
	}
	if old := pools[i].Gateway; old.IsValid() {
		return configErr("two gateways for subnet %s: %s and %s; give one gateway per subnet",
			subnets[i], old, g)
	}
	pools[i].Gateway = g
	return nil
}

func pairRange(pools []PoolConfig, subnets []netip.Prefix, r netip.Prefix) error {
	if err := checkSubnet("ip-range", r); err != nil {
		return err
	}
	i := slices.IndexFunc(subnets, func(s netip.Prefix) bool { return contains(s, r) })
	if i < 0 {
		if j := slices.IndexFunc(subnets, func(s netip.Prefix) bool { return contains(r, s) }); j >= 0 {
			return configErr("ip-range %s is larger than its subnet %s; give a range inside the subnet, at most %s",
				r, subnets[j], subnets[j])
		}
		return configErr("ip-range %s is outside every subnet (%s); give a range inside one of them",
			r, subnetList(subnets))
	}
	if old := pools[i].IPRange; old.IsValid() {
		return configErr("two ip-ranges for subnet %s: %s and %s; give one ip-range per subnet",
			subnets[i], old, r)
	}
	pools[i].IPRange = r
	return nil
}

func pairAux(pools []PoolConfig, subnets []netip.Prefix, aux []AuxAddress) error {
	seen := make(map[string]bool, len(aux))
	for _, x := range aux {
		if err := checkAuxName(x.Name); err != nil {
			return err
		}
		if seen[x.Name] {
			return configErr("aux-address name %q is given twice; give each reservation its own name", x.Name)
		}
		seen[x.Name] = true
		if err := checkAddr("aux-address "+x.Name, x.Addr); err != nil {
			return err
		}
		i := holder(subnets, x.Addr)
		if i < 0 {
			return configErr("aux-address %s=%s is outside every subnet (%s); give an address inside one of them",
				x.Name, x.Addr, subnetList(subnets))
		}
		if pools[i].Aux == nil {
			pools[i].Aux = make(map[string]netip.Addr)
		}
		pools[i].Aux[x.Name] = x.Addr
	}
	return nil
}
