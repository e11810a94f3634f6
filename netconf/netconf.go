// Package netconf parses and validates the Docker-style options of
// `mvlan network create` into a network configuration. It is pure: no
// kernel, no state; the agent checks what depends on those.
package netconf

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/ipam"
)

// Modes are the macvlan modes a network may use; the first is the default.
var Modes = []string{"bridge", "private", "vepa", "passthru"}

// Config is a validated network configuration.
type Config struct {
	Name     string
	Parent   string // "" means a host-only network on a link mvlan creates
	Mode     string
	IPv6     bool
	Internal bool // also every network without a parent (host-only)
	Serial   bool
	Labels   map[string]string
	Options  map[string]string
	Pools    []ipam.PoolConfig
	HostShim *HostShim // -o host_shim; nil means none
	DHCP     bool      // addresses come from the DHCP server on the wire
}

// Label limits: a network's labels are stored with it and returned by every
// ls and inspect, so they are bounded.
const (
	MaxLabels     = 256  // labels per network
	MaxLabelKey   = 256  // bytes of a label's key
	MaxLabelValue = 4096 // bytes of a label's value
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// CheckName validates a network or container name.
func CheckName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is missing", what)
	case len(name) > 64:
		return fmt.Errorf("%s name %q is %d bytes; use at most 64", what, name, len(name))
	case !nameRE.MatchString(name):
		return fmt.Errorf("%s name %q is invalid; use letters, digits and _ . - (starting with a letter or digit)", what, name)
	}
	return nil
}

// Parse validates req and returns the configuration it describes. Every
// error names the bad value and what would be right.
func Parse(req api.NetworkCreate) (Config, error) {
	c := Config{Name: req.Name, IPv6: req.IPv6, Internal: req.Internal}
	if err := CheckName("network", req.Name); err != nil {
		return Config{}, err
	}
	if req.Driver != "" && req.Driver != api.Driver {
		return Config{}, fmt.Errorf("unknown driver %q; mvlan serves only %q (-d macvlan)", req.Driver, api.Driver)
	}
	var err error
	if c.Labels, err = parseLabels(req.Labels); err != nil {
		return Config{}, err
	}
	if err = c.parseOptions(req.Options); err != nil {
		return Config{}, err
	}
	if err = c.parseIPAMOptions(req.IPAMOptions); err != nil {
		return Config{}, err
	}
	if c.Pools, err = parsePools(req); err != nil {
		return Config{}, err
	}
	if v, ok := c.Options[OptHostShim]; ok {
		h, err := ParseHostShim(v, c.Mode, c.Pools, false)
		if err != nil {
			return Config{}, err
		}
		c.HostShim = &h
		c.Options[OptHostShim] = h.String()
	}
	if err = c.parseIPAMDriver(req); err != nil {
		return Config{}, err
	}
	if c.Options[OptIPv6RA] == "accept" && !c.IPv6 && !slices.ContainsFunc(c.Pools, func(p ipam.PoolConfig) bool { return p.Subnet.Addr().Is6() }) {
		return Config{}, fmt.Errorf("option %s=accept on a network without IPv6 does nothing; give --ipv6 and an IPv6 --subnet, or leave it out", OptIPv6RA)
	}
	c.Internal = c.Internal || c.Parent == "" // host-only: no default route, as Docker's macvlan
	return c, nil
}

func (c *Config) parseOptions(opts []string) error {
	c.Options = map[string]string{}
	c.Mode = Modes[0]
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if canon, ok, err := checkFirstHop(k, v); ok {
			if err == nil {
				err = c.setOption(k, canon)
			}
			if err != nil {
				return err
			}
			continue
		}
		switch {
		case k == "parent":
			if v == "" {
				return fmt.Errorf("option %q has no value; use -o parent=IFNAME (e.g. eth0 or eth0.50)", o)
			}
			c.Parent = v
		case k == "macvlan_mode":
			if v == "" {
				v = "bridge" // as Docker takes an empty one: its default
			}
			if !slices.Contains(Modes, v) {
				return fmt.Errorf("unknown macvlan_mode %q; use one of %s", v, strings.Join(Modes, ", "))
			}
			c.Mode = v
		case k == OptHostShim:
			// Checked with the pools and the mode, once they are known.
		case (k == "-o" || k == "--opt") && v == "":
			// The option flag itself taken as an option's value, as in
			// the reference's `-o parent=eth0.60 -o -o macvlan_mode=bridge`;
			// Docker ignores it, so do we (no other stray token).
			continue
		default:
			return fmt.Errorf("unknown option %q; macvlan networks take -o parent=IFNAME, -o macvlan_mode=%s, -o %s=true, -o %s=true, -o %s=accept with -o %s=LL[,MAC], and -o %s=auto|IP[,IP6]",
				o, strings.Join(Modes, "|"), OptAllowRouter, OptAllowDHCPServer, OptIPv6RA, OptIPv6RASource, OptHostShim)
		}
		if err := c.setOption(k, v); err != nil {
			return err
		}
	}
	return checkRASource(c.Options)
}

// setOption records option k's value v, refusing a second, other value.
func (c *Config) setOption(k, v string) error {
	if prev, ok := c.Options[k]; ok && prev != v {
		return fmt.Errorf("option %s is given twice, as %q and %q; give it once", k, prev, v)
	}
	c.Options[k] = v
	return nil
}

// parseIPAMDriver checks --ipam-driver. A DHCP network takes at most one
// IPv4 --subnet (the server's answers must fall in it), with --ipv6 (its
// endpoints lease an IPv6 address too, by DHCPv6) at most one IPv6
// --subnet (the same, and the address's on-link prefix), and nothing that
// only a local pool has (--gateway, --ip-range, --aux-address).
func (c *Config) parseIPAMDriver(req api.NetworkCreate) error {
	switch req.IPAMDriver {
	case "", api.IPAMDefault, "mvlan":
		return nil
	case api.IPAMDHCP:
	default:
		return fmt.Errorf("unknown --ipam-driver %q; use default (the network's --subnet pools) or dhcp (the DHCP server on the parent's wire)", req.IPAMDriver)
	}
	c.DHCP = true
	v4, v6 := 0, 0
	for _, p := range c.Pools {
		if p.Subnet.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	switch {
	case len(req.Gateways)+len(req.IPRanges)+len(req.AuxAddrs) > 0:
		return errors.New("--ipam-driver dhcp takes the router and addresses from the DHCP server; leave out --gateway, --ip-range and --aux-address")
	case c.Serial:
		return errors.New("--ipam-opt allocation= is for the default IPAM driver; the DHCP server allocates on a dhcp network")
	case v4 > 1 || v6 > 1:
		return fmt.Errorf("--ipam-driver dhcp takes at most one IPv4 and (with --ipv6) one IPv6 --subnet (the ranges the server's offers must fall in), got %v", req.Subnets)
	}
	return nil
}

func (c *Config) parseIPAMOptions(opts []string) error {
	for _, o := range opts {
		switch o {
		case "allocation=serial":
			c.Serial = true
		case "allocation=lowest":
			c.Serial = false
		default:
			return fmt.Errorf("unknown --ipam-opt %q; use allocation=lowest (default) or allocation=serial", o)
		}
	}
	return nil
}

func parsePools(req api.NetworkCreate) ([]ipam.PoolConfig, error) {
	if len(req.Subnets) == 0 && req.IPAMDriver == api.IPAMDHCP {
		return nil, nil // the server's offers are taken as they come
	}
	if len(req.Subnets) == 0 {
		return nil, fmt.Errorf("--subnet is required: a macvlan network takes its addresses from the physical network (e.g. --subnet=172.16.86.0/24)")
	}
	subnets, err := parsePrefixes("--subnet", req.Subnets)
	if err != nil {
		return nil, err
	}
	hasV6 := false
	for i, s := range subnets {
		if s.Addr().Is6() {
			hasV6 = true
			if !req.IPv6 {
				return nil, fmt.Errorf("subnet %s is IPv6; add --ipv6 to enable IPv6 on this network", req.Subnets[i])
			}
		}
	}
	if req.IPv6 && !hasV6 && req.IPAMDriver != api.IPAMDHCP {
		return nil, fmt.Errorf("--ipv6 needs an IPv6 --subnet (e.g. --subnet=2001:db8:abc8::/64)")
	}
	ranges, err := parsePrefixes("--ip-range", req.IPRanges)
	if err != nil {
		return nil, err
	}
	gws, err := parseAddrs("--gateway", req.Gateways)
	if err != nil {
		return nil, err
	}
	aux, err := parseAux(req.AuxAddrs)
	if err != nil {
		return nil, err
	}
	return ipam.Pair(subnets, gws, ranges, aux)
}

func parsePrefixes(flag string, vals []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(vals))
	for _, v := range vals {
		p, err := netip.ParsePrefix(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("invalid %s %q: not a CIDR prefix; use ADDRESS/BITS such as 172.16.86.0/24 or 2001:db8::/64", flag, v)
		}
		if p.Addr().Zone() != "" {
			return nil, fmt.Errorf("invalid %s %q: zones are not allowed in a prefix", flag, v)
		}
		if p.Addr().Is4In6() && p.Bits() < 96 {
			return nil, shortMapped(flag, v, p)
		}
		out = append(out, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p)))
	}
	return out, nil
}

// shortMapped is the error for v, an IPv4-mapped IPv6 prefix p (flag) of
// fewer than 96 bits: the mapping takes the first 96, so it is no IPv4
// prefix. It names the IPv4 form meant.
func shortMapped(flag, v string, p netip.Prefix) error {
	v4 := p.Addr().Unmap()
	hint := fmt.Sprintf("give the IPv4 form, %s/LEN, or ::ffff:%s/96+LEN", v4, v4)
	if p.Bits() <= 32 {
		hint = fmt.Sprintf("give the IPv4 form, %s, or ::ffff:%s/%d", netip.PrefixFrom(v4, p.Bits()).Masked(), v4, 96+p.Bits())
	}
	return fmt.Errorf("invalid %s %q: the IPv4-mapped ::ffff:%s needs a prefix of at least 96 bits (the mapping's) to be an IPv4 prefix; %s",
		flag, v, v4, hint)
}

func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

func parseAddrs(flag string, vals []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(vals))
	for _, v := range vals {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("invalid %s %q: not an IP address; use e.g. 172.16.86.1 or 2001:db8::1", flag, v)
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

func parseAux(vals []string) (map[string]netip.Addr, error) {
	kv, err := parseKV("--aux-address", vals, true)
	if err != nil {
		return nil, fmt.Errorf("%w (NAME=IP, e.g. exclude_host=172.16.86.250)", err)
	}
	out := make(map[string]netip.Addr, len(kv))
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		a, err := netip.ParseAddr(kv[k])
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("invalid --aux-address %q: %q is not an IP address; use NAME=IP such as exclude_host=172.16.86.250", k+"="+kv[k], kv[k])
		}
		out[k] = a.Unmap()
	}
	return out, nil
}

// parseLabels parses --label KEY=VALUE items within the label limits.
func parseLabels(vals []string) (map[string]string, error) {
	if len(vals) > MaxLabels {
		return nil, fmt.Errorf("%d labels given; a network takes at most %d", len(vals), MaxLabels)
	}
	kv, err := parseKV("--label", vals, false)
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		switch v := kv[k]; {
		case len(k) > MaxLabelKey:
			return nil, fmt.Errorf("label key %.40q... is %d bytes; use at most %d", k, len(k), MaxLabelKey)
		case strings.IndexFunc(k, unicode.IsControl) >= 0:
			return nil, fmt.Errorf("label key %q contains a control character; use printable text", k)
		case len(v) > MaxLabelValue:
			return nil, fmt.Errorf("label %q has a value of %d bytes; use at most %d", k, len(v), MaxLabelValue)
		}
	}
	return kv, nil
}

// parseKV parses KEY=VALUE items; with needValue, VALUE must be present.
// Quotes around the whole item ("KEY=VALUE", as a shell passes it on when
// they are quoted twice) or around VALUE are dropped.
func parseKV(flag string, vals []string, needValue bool) (map[string]string, error) {
	out := make(map[string]string, len(vals))
	for _, v := range vals {
		k, val, ok := strings.Cut(strings.Trim(strings.TrimSpace(v), `"`), "=")
		k = strings.TrimSpace(k)
		if k == "" || (needValue && (!ok || val == "")) {
			return nil, fmt.Errorf("invalid %s %q; use KEY=VALUE", flag, v)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("invalid %s %q: %q is given twice", flag, v, k)
		}
		out[k] = strings.Trim(val, `"`)
	}
	return out, nil
}
