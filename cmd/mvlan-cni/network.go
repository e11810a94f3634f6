package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/mvlan/mvlan/api"
)

// ensureNetwork returns the network of an inline definition: created on
// first use, else checked against the network the agent has.
func ensureNetwork(ctx context.Context, cl *api.Client, c *Conf) (api.Network, error) {
	n, err := networkNamed(ctx, cl, c.Network)
	if api.IsKind(err, api.KindNotFound) {
		n, err = cl.CreateNetwork(ctx, c.NetworkCreate())
		if err == nil {
			return n, nil
		}
		if api.IsKind(err, api.KindConflict) {
			// Another ADD may have created it meanwhile: that one is
			// checked instead. With none, the clash is the definition's
			// own (a subnet or parent of another network): err says so.
			if other, lerr := networkNamed(ctx, cl, c.Network); lerr == nil {
				n, err = other, nil
			}
		}
	}
	if err != nil {
		return n, err
	}
	if diff := c.differs(n); diff != "" {
		return n, mismatch(n, diff)
	}
	return n, nil
}

// networkNamed is the agent's network of that name (or full ID): the API
// also takes a network by ID prefix, which a configuration's name never
// means.
func networkNamed(ctx context.Context, cl *api.Client, name string) (api.Network, error) {
	n, err := cl.NetworkBrief(ctx, name)
	if err == nil && n.Name != name && n.ID != name {
		return api.Network{}, &api.Error{Message: fmt.Sprintf("network %q not found; see mvlan network ls", name), Kind: api.KindNotFound}
	}
	return n, err
}

// mismatch is the error of an inline definition that differs from the
// network of that name.
func mismatch(n api.Network, diff string) error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("mvlan network %s exists with another definition: %s; make the configuration match it (mvlan network inspect %s) or use another \"network\" name", n.Name, diff, n.Name), "")
}

// noNetwork is the error of an ADD to a named network the agent has not.
func noNetwork(c *Conf) error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("mvlan has no network %q: create it (mvlan network create ... %s) or define it inline with \"subnets\" (and \"parent\")", c.Network, c.Network), "")
}

// differs says how the inline definition differs from n ("" when it
// matches). Gateways and ranges left out of the definition match any; a
// parent named by an altname matches the network on that link.
func (c *Conf) differs(n api.Network) string {
	var d []string
	switch {
	case c.Parent == "" && n.ParentKind != api.ParentHostOnly:
		d = append(d, fmt.Sprintf("parent %s, not host-only", n.Parent))
	case c.Parent != "" && c.Parent != n.Parent && !slices.Contains(n.ParentAltNames, c.Parent):
		d = append(d, fmt.Sprintf("parent %s, not %s", n.Parent, c.Parent))
	}
	if mode := orDefault(c.Mode, "bridge"); mode != n.Mode {
		d = append(d, fmt.Sprintf("mode %s, not %s", n.Mode, mode))
	}
	internal := c.Internal || c.Parent == "" // a host-only network is internal
	if c.IPv6 != n.IPv6 || internal != n.Internal {
		d = append(d, fmt.Sprintf("ipv6=%t internal=%t, not ipv6=%t internal=%t", n.IPv6, n.Internal, c.IPv6, internal))
	}
	var have []string
	for _, p := range n.Pools {
		have = append(have, p.Subnet.String())
	}
	var want []string
	for _, s := range c.Subnets {
		want = append(want, canonPrefix(s))
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		d = append(d, fmt.Sprintf("subnets %s, not %s", strings.Join(have, ","), strings.Join(want, ",")))
	}
	for _, g := range c.Gateways {
		if !slices.ContainsFunc(n.Pools, func(p api.Pool) bool { return p.Gateway.String() == canonAddr(g) }) {
			d = append(d, fmt.Sprintf("no gateway %s", g))
		}
	}
	for _, r := range c.Ranges {
		if !slices.ContainsFunc(n.Pools, func(p api.Pool) bool { return p.IPRange.String() == canonPrefix(r) }) {
			d = append(d, fmt.Sprintf("no range %s", r))
		}
	}
	return strings.Join(d, "; ")
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func canonPrefix(s string) string {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return s
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapped(p)).Masked().String()
}

func unmapped(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

func canonAddr(s string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return s
	}
	return a.Unmap().String()
}
