package main

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/format"
)

func networkCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:  "network",
		Usage: "create, list, inspect and remove macvlan networks",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a network",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: api.Driver, Usage: "network driver (macvlan)"},
					&cli.StringSliceFlag{Name: "subnet", Usage: "subnet in CIDR form; repeatable or comma-separated"},
					&cli.StringSliceFlag{Name: "gateway", Usage: "gateway of the subnet that contains it; repeatable or comma-separated"},
					&cli.StringSliceFlag{Name: "ip-range", Usage: "allocate container addresses from this sub-range; repeatable or comma-separated"},
					&cli.StringSliceFlag{Name: "aux-address", Usage: "NAME=IP never handed out; repeatable"},
					&cli.BoolFlag{Name: "ipv6", Usage: "enable IPv6 (needs an IPv6 --subnet)"},
					&cli.BoolFlag{Name: "internal", Usage: "no default route in containers"},
					&cli.StringSliceFlag{Name: "label", Usage: "KEY=VALUE metadata; repeatable"},
					&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "driver option: parent=IFNAME, macvlan_mode=bridge|private|vepa|passthru, host_shim=auto|IP[,IP6], ipv6_ra=ignore|accept, ipv6_ra_source=LL[,MAC], allow_router=true, allow_dhcp_server=true"},
					&cli.StringSliceFlag{Name: "ipam-opt", Usage: "IPAM option: allocation=lowest|serial"},
					&cli.StringFlag{Name: "ipam-driver", Value: "default", Usage: "IPAM driver: default (the --subnet pools) or dhcp (the DHCP server on the parent's wire)"},
					&cli.StringFlag{Name: "scope", Value: api.ScopeLocal, Usage: "local (this host's pool) or cluster (one pool across the agents of mvlan agent --cluster; run create on each host with its own -o parent, the first defines it)"},
					formatFlag(),
				},
				Action: networkCreate,
			},
			{Name: "ls", Aliases: []string{"list"}, Usage: "list networks", Action: networkLs,
				Flags: []cli.Flag{formatFlag(), &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only IDs"},
					&cli.BoolFlag{Name: "no-trunc", Usage: "full IDs"}}},
			{Name: "inspect", Usage: "show networks in detail (JSON, as docker network inspect)", ArgsUsage: "NETWORK...", Action: networkInspect,
				Flags: []cli.Flag{inspectFormatFlag()}},
			{Name: "rm", Aliases: []string{"remove"}, Usage: "remove networks", ArgsUsage: "NETWORK...", Action: networkRm,
				Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not error if the network does not exist"}}},
			{Name: "update", Usage: "change a network's options: host_shim=auto|IP[,IP6]|off", ArgsUsage: "NETWORK", Action: networkUpdate,
				Flags: []cli.Flag{&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "host_shim=auto|IP[,IP6]|off"}, formatFlag()}},
			connectCommand(), disconnectCommand(), // Docker's network connect / disconnect
		},
	})
}

func networkCreate(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("network create takes exactly one NAME, got %d arguments", c.NArg())
	}
	if d := c.String("ipam-driver"); d != "default" && d != "mvlan" && d != api.IPAMDHCP {
		return usagef("unknown --ipam-driver %q; use default (the --subnet pools) or dhcp (the DHCP server on the parent's wire)", d)
	}
	f, err := outputFormat(c)
	if err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	n, err := cl.CreateNetwork(c.Context, createRequest(c))
	if err != nil {
		return err
	}
	return printNetwork(c, f, n)
}

// createRequest is the network create command line as a request. As in
// Docker's CLI, --subnet, --gateway and --ip-range are lists split at
// commas (--subnet 10.0.0.0/24,10.1.0.0/24 is two subnets); -o,
// --ipam-opt, --aux-address and --label values are taken whole
// (-o host_shim=IP,IP6 is one option).
func createRequest(c *cli.Context) api.NetworkCreate {
	return api.NetworkCreate{
		Name: c.Args().First(), Driver: c.String("driver"),
		Subnets: commaList(c, "subnet"), Gateways: commaList(c, "gateway"),
		IPRanges: commaList(c, "ip-range"), AuxAddrs: c.StringSlice("aux-address"),
		IPv6: c.Bool("ipv6"), Internal: c.Bool("internal"), Labels: c.StringSlice("label"),
		Options: c.StringSlice("opt"), IPAMOptions: c.StringSlice("ipam-opt"), Scope: c.String("scope"),
		IPAMDriver: c.String("ipam-driver"),
	}
}

// commaList is the values of the repeatable flag name, each split at its
// commas, as Docker's CLI splits its string-slice flags. An empty value
// stays (one empty part), for the agent to refuse by name.
func commaList(c *cli.Context, name string) []string {
	var out []string
	for _, v := range c.StringSlice(name) {
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}

// printNetwork prints a network that create or update returned: its ID,
// or the network in the --format asked for.
func printNetwork(c *cli.Context, f format.Format, n api.Network) error {
	if f.Kind == format.Table {
		fmt.Fprintln(c.App.Writer, n.ID)
		return nil
	}
	return format.Write(c.App.Writer, f, []dockerNetwork{toDocker(n)}, networkHeaders)
}

// networkHeaders name the fields of a network in a "table TEMPLATE".
var networkHeaders = map[string]string{"ID": "NETWORK ID"}

func networkLs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("network ls takes no arguments, got %q", c.Args().First())
	}
	f, err := outputFormat(c)
	if err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	ns, err := cl.Networks(c.Context)
	if err != nil {
		return err
	}
	id := idOf(c)
	switch {
	case c.Bool("quiet"):
		for _, n := range ns {
			fmt.Fprintln(c.App.Writer, id(n.ID))
		}
		return nil
	case f.Kind == format.Template: // .ID as in the table, as Docker's
		ds := toDockers(ns)
		for i := range ds {
			ds[i].ID = id(ds[i].ID)
		}
		return format.Write(c.App.Writer, f, ds, networkHeaders)
	case f.Kind == format.JSON: // inspect's shape, the full Id
		return format.Write(c.App.Writer, f, toDockers(ns), networkHeaders)
	}
	rows := make([][]string, 0, len(ns))
	for _, n := range ns {
		rows = append(rows, []string{id(n.ID), n.Name, n.Driver, scope(n), n.Parent, subnets(n), n.Status})
	}
	return format.PrintTable(c.App.Writer, []string{"NETWORK ID", "NAME", "DRIVER", "SCOPE", "PARENT", "SUBNETS", "STATUS"}, rows)
}

func subnets(n api.Network) string {
	s := make([]string, 0, len(n.Pools))
	for _, p := range n.Pools {
		s = append(s, p.Subnet.String())
	}
	return strings.Join(s, ",")
}

// networkInspect prints every network found (JSON by default, as docker
// network inspect) and then fails if any was not. A template may name
// the fields as the JSON does ({{.Id}}), as docker network inspect's.
func networkInspect(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("network inspect needs at least one NETWORK")
	}
	f, err := outputFormat(c)
	if err != nil {
		return err
	}
	if f.Kind == format.Table {
		f.Kind = format.JSON
	}
	cl := client(c)
	defer cl.Close()
	var found []api.Network
	var errs []error
	for _, ref := range c.Args().Slice() {
		n, err := cl.Network(c.Context, ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found = append(found, n)
	}
	if err := format.Inspect(c.App.Writer, f, toDockers(found), networkHeaders); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// networkRm removes networks; with --force one that does not exist is
// passed over in silence, as with docker network rm -f.
func networkRm(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("network rm needs at least one NETWORK")
	}
	cl := client(c)
	defer cl.Close()
	var skip func(error)
	if c.Bool("force") {
		skip = func(error) {} // as docker network rm -f: not a word
	}
	return removeEach(c, func(ref string) error { return cl.RemoveNetwork(c.Context, ref) }, skip)
}

// networkUpdate changes options of one network and prints its ID (or the
// network in the --format asked for).
func networkUpdate(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("network update takes exactly one NETWORK, got %d arguments", c.NArg())
	}
	if len(c.StringSlice("opt")) == 0 {
		return usagef("network update needs an option to change, e.g. -o host_shim=auto or -o host_shim=off")
	}
	f, err := outputFormat(c)
	if err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	n, err := cl.UpdateNetwork(c.Context, c.Args().First(), updateRequest(c))
	if err != nil {
		return err
	}
	return printNetwork(c, f, n)
}

// updateRequest is the network update command line as a request: each
// -o value whole (-o host_shim=IP,IP6 is one option).
func updateRequest(c *cli.Context) api.NetworkUpdate {
	return api.NetworkUpdate{Options: c.StringSlice("opt")}
}

// dockerNetwork is a network as every network command prints it (ls,
// inspect, create with --format): the shape of `docker network inspect`,
// plus the parent link's provenance and the network's status.
type dockerNetwork struct {
	Name       string
	ID         string `json:"Id"`
	Created    time.Time
	Scope      string
	Driver     string
	EnableIPv4 bool
	EnableIPv6 bool
	IPAM       dockerIPAM
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigFrom struct{ Network string }
	ConfigOnly bool
	Containers map[string]dockerContainer
	Options    map[string]string
	Labels     map[string]string
	Parent     string
	ParentKind string
	Status     string
	HostShim   *api.HostShim `json:",omitempty"`
	// EndpointCount is how many containers are on it: network ls leaves
	// Containers empty (the agent lists them only for inspect).
	EndpointCount int
}

type dockerIPAM struct {
	Driver  string
	Options map[string]string
	Config  []dockerPool
}

type dockerPool struct {
	Subnet             string
	IPRange            string            `json:",omitempty"`
	Gateway            string            `json:",omitempty"`
	AuxiliaryAddresses map[string]string `json:",omitempty"`
}

type dockerContainer struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string
	IPv6Address string
	DNS         []string `json:",omitempty"` // from its DHCP lease
	DNSSearch   []string `json:",omitempty"`
}

// scope is n's scope, local for agents that do not say.
func scope(n api.Network) string {
	if n.Scope == "" {
		return api.ScopeLocal
	}
	return n.Scope
}

func toDocker(n api.Network) dockerNetwork {
	d := dockerNetwork{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: scope(n), Driver: n.Driver,
		EnableIPv4: true, EnableIPv6: n.IPv6, Internal: n.Internal, Containers: map[string]dockerContainer{},
		Options: maps.Clone(n.Options), Labels: n.Labels, Parent: n.Parent, ParentKind: n.ParentKind, Status: n.Status, HostShim: n.HostShim,
		EndpointCount: n.EndpointCount,
		IPAM:          dockerIPAM{Driver: "default", Options: map[string]string{}},
	}
	if n.IPAMDriver != "" {
		d.IPAM.Driver = n.IPAMDriver // dhcp
	}
	if d.Options == nil {
		d.Options = map[string]string{}
	}
	d.Options["parent"] = n.Parent
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	if n.Serial {
		d.IPAM.Options["allocation"] = "serial"
	}
	for _, p := range n.Pools {
		dp := dockerPool{Subnet: p.Subnet.String(), Gateway: p.Gateway.String()}
		if p.IPRange.IsValid() {
			dp.IPRange = p.IPRange.String()
		}
		for _, k := range slices.Sorted(maps.Keys(p.Aux)) {
			if dp.AuxiliaryAddresses == nil {
				dp.AuxiliaryAddresses = map[string]string{}
			}
			dp.AuxiliaryAddresses[k] = p.Aux[k].String()
		}
		d.IPAM.Config = append(d.IPAM.Config, dp)
	}
	for _, e := range n.Endpoints {
		dns, search := dnsOf(e)
		d.Containers[e.ID] = dockerContainer{Name: e.Name, EndpointID: e.ID, MacAddress: e.MAC,
			IPv4Address: firstOf(e.Addrs, false), IPv6Address: firstOf(e.Addrs, true), DNS: dns, DNSSearch: search}
	}
	return d
}

// IPv4, IPv6 and CreatedAt are the fields of docker network ls's
// templates that docker network inspect names otherwise.
func (n dockerNetwork) IPv4() bool { return n.EnableIPv4 }

// IPv6 is EnableIPv6, under docker network ls's name.
func (n dockerNetwork) IPv6() bool { return n.EnableIPv6 }

// CreatedAt is Created as docker network ls prints it.
func (n dockerNetwork) CreatedAt() string {
	return n.Created.Format("2006-01-02 15:04:05.999999999 -0700 MST")
}

func toDockers(ns []api.Network) []dockerNetwork {
	out := make([]dockerNetwork, 0, len(ns))
	for _, n := range ns {
		out = append(out, toDocker(n))
	}
	return out
}

func firstOf(addrs []netip.Prefix, v6 bool) string {
	for _, p := range addrs {
		if p.Addr().Is6() == v6 {
			return p.String()
		}
	}
	return ""
}
