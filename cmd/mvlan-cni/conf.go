package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/mvlan/mvlan/api"
)

// Conf is the plugin's network configuration (stdin), validated.
type Conf struct {
	types.PluginConf

	// Network is the mvlan network to attach to; the CNI network name
	// when empty.
	Network string `json:"network,omitempty"`
	// Socket is the agent's API socket (else MVLAN_SOCKET, else the default).
	Socket string `json:"socket,omitempty"`

	// An inline definition: the agent creates the network on first use,
	// or checks that the one it has matches.
	Parent   string   `json:"parent,omitempty"`
	Mode     string   `json:"mode,omitempty"`
	Subnets  []string `json:"subnets,omitempty"`
	Ranges   []string `json:"ranges,omitempty"`
	Gateways []string `json:"gateways,omitempty"`
	Gateway  string   `json:"gateway,omitempty"` // one more entry of Gateways
	IPv6     bool     `json:"ipv6,omitempty"`
	Internal bool     `json:"internal,omitempty"`

	// RuntimeConfig holds the capability arguments the runtime passes.
	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
		MAC string   `json:"mac,omitempty"`
	} `json:"runtimeConfig,omitzero"`

	// Args holds CNI_ARGS-style arguments given in the configuration.
	Args struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
			MAC string   `json:"mac,omitempty"`
		} `json:"cni,omitzero"`
	} `json:"args,omitzero"`
}

// cniArgs are the CNI_ARGS keys the plugin reads.
type cniArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // the key's name
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive
	IP                types.UnmarshallableString
	MAC               types.UnmarshallableString
}

// Want is what an attachment asks for beyond the network: exact addresses
// and MAC (from runtimeConfig, args or CNI_ARGS).
type Want struct {
	IP, IP6 string
	MAC     string
	Name    string // the endpoint's name in mvlan ps
}

// parseConf decodes and validates the configuration; errors are CNI
// errors with code 7 (invalid network config), 6 (decoding, prevResult
// included) or 2 (an "ipam" section: unsupported field).
func parseConf(data []byte) (*Conf, error) {
	c := &Conf{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode the network configuration: "+err.Error(), "")
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "cannot decode prevResult: "+err.Error(), "")
		}
		if _, err := readPrev(c.PrevResult); err != nil {
			return nil, err // before the agent attaches anything
		}
	}
	if !c.IPAM.IsEmpty() {
		return nil, types.NewError(types.ErrUnsupportedField, fmt.Sprintf(`"ipam" (type %q) is not supported: mvlan allocates the addresses itself; remove the "ipam" section and put subnets, ranges and gateways in the mvlan configuration (static addresses: runtimeConfig "ips")`, c.IPAM.Type), "")
	}
	if err := c.validate(); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	return c, nil
}

// delConf is what a DEL reads of the configuration: the CNI network's
// name (part of the attachment's identity), the mvlan network and the
// agent's socket.
type delConf struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	Socket  string `json:"socket"`
}

// parseDelConf decodes the configuration for a DEL: only delConf's fields
// are read, the rest may not even decode, and nothing is validated (see
// cmdDel).
func parseDelConf(data []byte) (*Conf, error) {
	var d delConf
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode the network configuration: "+err.Error(), "")
	}
	return &Conf{PluginConf: types.PluginConf{Name: d.Name}, Network: cmp.Or(d.Network, d.Name), Socket: d.Socket}, nil
}

// gcKeys are the keys of a GC's list of valid attachments, in the order
// read: the spec's, then the one CNI 1.1.0 named as first published
// (libcni >= 1.2.3 sends both, some runtimes only the old one).
var gcKeys = []string{"cni.dev/valid-attachments", "cni.dev/attachments"}

// validAttachments reads a GC's list of valid attachments; ok is false
// when the configuration has it under neither key: the runtime did not
// say which are valid. A null list is an empty one (libcni sends null
// for a GC with no valid attachment, and DELs all it cached itself).
func validAttachments(data []byte) (valid []types.GCAttachment, ok bool, err error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, false, types.NewError(types.ErrDecodingFailure, "cannot decode the network configuration: "+err.Error(), "")
	}
	for _, k := range gcKeys {
		raw, ok := keys[k]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, &valid); err != nil {
			return nil, false, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("cannot decode %q: %v", k, err), "")
		}
		return valid, true, nil
	}
	return nil, false, nil
}

func (c *Conf) validate() error {
	if c.Network == "" {
		c.Network = c.Name
	}
	if c.Network == "" {
		return fmt.Errorf(`no network: set "network" to an mvlan network's name (or give the configuration a "name")`)
	}
	if c.Gateway != "" {
		c.Gateways = append(c.Gateways, c.Gateway)
	}
	if c.Mode != "" && !slices.Contains([]string{"bridge", "private", "vepa", "passthru"}, c.Mode) {
		return fmt.Errorf("mode %q is not a macvlan mode; use bridge, private, vepa or passthru", c.Mode)
	}
	if !c.Inline() && (c.Parent != "" || c.Mode != "" || len(c.Ranges) > 0 || len(c.Gateways) > 0 || c.IPv6 || c.Internal) {
		return fmt.Errorf(`an inline network definition needs "subnets" (e.g. ["172.16.86.0/24"]); without it, leave out parent, mode, ranges, gateways, ipv6 and internal`)
	}
	return nil
}

// Inline reports whether the configuration defines the network itself.
func (c *Conf) Inline() bool { return len(c.Subnets) > 0 }

// SocketPath is the agent's socket: the configuration's, else
// MVLAN_SOCKET, else the agent's default.
func (c *Conf) SocketPath() string {
	switch {
	case c.Socket != "":
		return c.Socket
	case os.Getenv("MVLAN_SOCKET") != "":
		return os.Getenv("MVLAN_SOCKET")
	}
	return api.DefaultSocket
}

// NetworkCreate is the request that creates the inline definition.
func (c *Conf) NetworkCreate() api.NetworkCreate {
	req := api.NetworkCreate{Name: c.Network, Driver: api.Driver, Subnets: c.Subnets, Gateways: c.Gateways,
		IPRanges: c.Ranges, IPv6: c.IPv6, Internal: c.Internal, Labels: []string{"cni.network=" + c.Name}}
	if c.Parent != "" {
		req.Options = append(req.Options, "parent="+c.Parent)
	}
	if c.Mode != "" {
		req.Options = append(req.Options, "macvlan_mode="+c.Mode)
	}
	return req
}

// want collects the static addresses, MAC and name an attachment asks for.
// Precedence: runtimeConfig, then the configuration's args, then CNI_ARGS.
func (c *Conf) want(containerID, envArgs string) (Want, error) {
	var a cniArgs
	if err := types.LoadArgs(envArgs, &a); err != nil {
		return Want{}, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: "+err.Error(), "")
	}
	w := Want{Name: string(a.K8S_POD_NAME)}
	if w.Name == "" {
		w.Name = containerID
		if len(w.Name) > 12 && isHex(w.Name) {
			w.Name = w.Name[:12] // as runtimes show container ids
		}
	}
	// A bad value is the configuration's (7), or CNI_ARGS' (4).
	ips, code := firstNonEmpty(c.RuntimeConfig.IPs, c.Args.CNI.IPs), types.ErrInvalidNetworkConfig
	if len(ips) == 0 && a.IP != "" {
		ips, code = strings.Split(string(a.IP), ","), types.ErrInvalidEnvironmentVariables
	}
	for _, s := range ips {
		if err := w.addIP(s); err != nil {
			return Want{}, types.NewError(code, err.Error(), "")
		}
	}
	w.MAC, code = firstNonEmpty(c.RuntimeConfig.MAC, c.Args.CNI.MAC), types.ErrInvalidNetworkConfig
	if w.MAC == "" {
		w.MAC, code = string(a.MAC), types.ErrInvalidEnvironmentVariables
	}
	if w.MAC != "" {
		if err := checkMAC(w.MAC); err != nil {
			return Want{}, types.NewError(code, err.Error(), "")
		}
	}
	return w, nil
}

// checkMAC: s is a unicast Ethernet address, not all zeros (the agent
// refuses the others; here the error is the variable's or the
// configuration's).
func checkMAC(s string) error {
	hw, err := net.ParseMAC(s)
	switch {
	case err != nil || len(hw) != 6:
		return fmt.Errorf("mac %q is not an Ethernet address; use e.g. 02:42:ac:10:56:0a", s)
	case hw[0]&1 == 1:
		return fmt.Errorf("mac %q is a multicast address; use a unicast one (first byte even), e.g. 02:42:ac:10:56:0a", s)
	case slices.Equal(hw, make(net.HardwareAddr, 6)):
		return fmt.Errorf("mac %q is all zeros; use e.g. 02:42:ac:10:56:0a", s)
	}
	return nil
}

// holds checks that the addresses w asks for are in the inline
// definition's subnets (the agent checks them against the network's
// anyway, but an inline network would be made first).
func (c *Conf) holds(w Want) error {
	for _, s := range []string{w.IP, w.IP6} {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue // none of that family
		}
		if !slices.ContainsFunc(c.Subnets, func(sub string) bool {
			p, err := netip.ParsePrefix(strings.TrimSpace(sub))
			return err == nil && p.Contains(a)
		}) {
			return types.NewError(types.ErrInvalidNetworkConfig,
				fmt.Sprintf("ips: %s is in none of the subnets %s; give an address of one", a, strings.Join(c.Subnets, ", ")), "")
		}
	}
	return nil
}

// addIP takes "10.1.2.3" or "10.1.2.3/24": the address only counts (the
// agent checks it is in one of the network's subnets, whose prefix it
// gets, whatever the one given).
func (w *Want) addIP(s string) error {
	s = strings.TrimSpace(s)
	addr, err := netip.ParseAddr(s)
	if err != nil {
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			return fmt.Errorf("ips: %q is not an IP address; use e.g. 172.16.86.10 or 172.16.86.10/24", s)
		}
		addr = p.Addr()
	}
	if addr.Zone() != "" {
		return fmt.Errorf("ips: %q has a zone; give the address without %%%s", s, addr.Zone())
	}
	addr = addr.Unmap()
	slot, fam := &w.IP, "IPv4"
	if addr.Is6() {
		slot, fam = &w.IP6, "IPv6"
	}
	if *slot != "" {
		return fmt.Errorf("ips: two %s addresses (%s and %s); an attachment takes at most one of each family", fam, *slot, addr)
	}
	*slot = addr.String()
	return nil
}

func firstNonEmpty[T interface{ ~string | ~[]string }](vs ...T) T {
	for _, v := range vs {
		if len(v) > 0 {
			return v
		}
	}
	var zero T
	return zero
}

func isHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}
