package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/format"
)

func endpointFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ip", Usage: "IPv4 address (default: the next free one)"},
		&cli.StringFlag{Name: "ip6", Usage: "IPv6 address (default: the next free one on --ipv6 networks)"},
		&cli.StringFlag{Name: "mac", Usage: "MAC address (default: derived from the network and the container's name, locally administered)"},
		&cli.StringFlag{Name: "ifname", Value: "eth0", Usage: "interface name inside the namespace"},
	}
}

func endpointRequest(c *cli.Context, network string) api.EndpointCreate {
	return api.EndpointCreate{Network: network, Name: c.String("name"), IP: c.String("ip"), IP6: c.String("ip6"),
		MAC: c.String("mac"), IfName: c.String("ifname")}
}

func connectCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:      "connect",
		Usage:     "attach an existing network namespace (e.g. /proc/PID/ns/net of a container) to a network",
		ArgsUsage: "NETWORK NETNS-PATH|NAME",
		Flags:     append(endpointFlags(), &cli.StringFlag{Name: "name", Usage: "endpoint name (default: from the path)"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("connect takes NETWORK and NETNS-PATH, got %d arguments", c.NArg())
			}
			req := endpointRequest(c, c.Args().Get(0))
			req.Netns = netnsPath(c.Args().Get(1))
			cl := client(c)
			defer cl.Close()
			e, err := cl.CreateEndpoint(c.Context, req)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, e.Name)
			return nil
		},
	})
}

func disconnectCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:      "disconnect",
		Usage:     "detach a network namespace from a network",
		ArgsUsage: "NETWORK NETNS-PATH|NAME",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("disconnect takes NETWORK and NETNS-PATH, got %d arguments", c.NArg())
			}
			cl := client(c)
			defer cl.Close()
			return cl.Disconnect(c.Context, c.Args().Get(0), netnsPath(c.Args().Get(1)))
		},
	})
}

// netnsPath is arg as a namespace path: a bare NAME (no "/") is the
// named namespace /run/netns/NAME, a container's of mvlan run (or ip
// netns add), as `docker network connect NET CONTAINER` names one.
func netnsPath(arg string) string {
	if arg == "" || strings.Contains(arg, "/") {
		return arg
	}
	return filepath.Join("/run/netns", arg)
}

func psCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:                   "ps",
		Usage:                  "list containers (endpoints)",
		UseShortOptionHandling: true,
		Flags: []cli.Flag{formatFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only IDs"},
			&cli.BoolFlag{Name: "no-trunc", Usage: "full IDs"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "all (accepted for docker compatibility; mvlan always lists all)"}},
		Action: ps,
	})
}

func ps(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("ps takes no arguments, got %q", c.Args().First())
	}
	f, err := outputFormat(c)
	if err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	eps, err := cl.Endpoints(c.Context)
	if err != nil {
		return err
	}
	id := idOf(c)
	switch {
	case c.Bool("quiet"):
		for _, e := range eps {
			fmt.Fprintln(c.App.Writer, id(e.ID))
		}
		return nil
	case f.Kind == format.Template: // .ID as in the table, as Docker's
		cs := toContainers(eps)
		for i := range cs {
			cs[i].ID = id(cs[i].ID)
		}
		return format.Write(c.App.Writer, f, cs, containerHeaders)
	case f.Kind == format.JSON: // the full ID
		return format.Write(c.App.Writer, f, toContainers(eps), containerHeaders)
	}
	return psTable(c, eps, id)
}

// containerHeaders name the fields of a container in a "table TEMPLATE".
var containerHeaders = map[string]string{"ID": "CONTAINER ID"}

// psTable prints ps's own table, IDs through id.
func psTable(c *cli.Context, eps []api.Endpoint, id func(string) string) error {
	rows := make([][]string, 0, len(eps))
	for _, e := range eps {
		addrs := strings.Join(addrStrings(e), ",")
		if e.Lease != nil {
			addrs += " (dhcp " + e.Lease.State + ")" // expired: the address is off the link
		}
		if e.Lease6 != nil {
			addrs += " (dhcp6 " + e.Lease6.State + ")"
		}
		rows = append(rows, []string{id(e.ID), e.Name, e.Network, addrs, e.MAC, e.IfName, e.Netns})
	}
	return format.PrintTable(c.App.Writer, []string{"CONTAINER ID", "NAME", "NETWORK", "ADDRESSES", "MAC", "IFACE", "NETNS"}, rows)
}

// container is a container as mvlan ps prints it with --format: its
// endpoint, with the field names of docker network inspect's Containers.
type container struct {
	ID          string
	Name        string
	Network     string
	NetworkID   string
	MacAddress  string
	IPv4Address string
	IPv6Address string
	Addresses   []string
	IfName      string
	Netns       string
	State       string
	Created     time.Time
	DHCP        string   `json:",omitempty"` // the lease's state, on a DHCP network
	DHCP6       string   `json:",omitempty"` // the DHCPv6 lease's state, with IPv6
	DNS         []string `json:",omitempty"` // the lease's DNS servers
	DNSSearch   []string `json:",omitempty"` // its search list, else its domain
}

// dnsOf is e's DNS servers (its DHCPv6 lease's after its DHCP lease's)
// and search list from its DHCP lease.
func dnsOf(e api.Endpoint) (dns, search []string) {
	if e.Lease == nil {
		return nil, nil
	}
	for _, a := range e.Lease.DNS {
		dns = append(dns, a.String())
	}
	if e.Lease6 != nil { // after the IPv4 lease's, as in resolv.conf
		for _, a := range e.Lease6.DNS {
			dns = append(dns, a.String())
		}
	}
	search = e.Lease.Search
	if len(search) == 0 && e.Lease.Domain != "" {
		search = []string{e.Lease.Domain}
	}
	return dns, search
}

func toContainers(eps []api.Endpoint) []container {
	out := make([]container, 0, len(eps))
	for _, e := range eps {
		out = append(out, container{ID: e.ID, Name: e.Name, Network: e.Network, NetworkID: e.NetworkID,
			MacAddress: e.MAC, IPv4Address: firstOf(e.Addrs, false), IPv6Address: firstOf(e.Addrs, true),
			Addresses: addrStrings(e), IfName: e.IfName, Netns: e.Netns, State: e.State, Created: e.Created})
		if e.Lease != nil {
			out[len(out)-1].DHCP = e.Lease.State
			out[len(out)-1].DNS, out[len(out)-1].DNSSearch = dnsOf(e)
		}
		if e.Lease6 != nil {
			out[len(out)-1].DHCP6 = e.Lease6.State
		}
	}
	return out
}

func addrStrings(e api.Endpoint) []string {
	s := make([]string, 0, len(e.Addrs))
	for _, p := range e.Addrs {
		s = append(s, p.String())
	}
	return s
}

func rmCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:      "rm",
		Usage:     "remove containers: their endpoints, addresses and the namespaces mvlan made",
		ArgsUsage: "NAME|NET/NAME|ID...",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"},
			Usage: "remove even if processes run in it; a container that is not there is no error"}},
		Action: rm,
	})
}

// rm removes containers; with --force one that is not there is reported
// on stderr and is no error, as with docker rm -f.
func rm(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("rm needs at least one container NAME or ID")
	}
	cl := client(c)
	defer cl.Close()
	var skip func(error)
	if c.Bool("force") {
		skip = func(err error) { fmt.Fprintln(c.App.ErrWriter, "mvlan: "+err.Error()) }
	}
	return removeEach(c, func(ref string) error { return cl.RemoveEndpoint(c.Context, ref, c.Bool("force")) }, skip)
}

// removeEach removes each argument with remove and prints the name of
// each removed. An argument the agent does not find goes to skip when
// skip is set (--force), and is then no error; every other failure is
// returned after the rest are tried.
func removeEach(c *cli.Context, remove func(ref string) error, skip func(error)) error {
	var errs []error
	for _, ref := range c.Args().Slice() {
		err := remove(ref)
		switch {
		case err == nil:
			fmt.Fprintln(c.App.Writer, ref)
		case skip != nil && api.IsKind(err, api.KindNotFound):
			skip(err)
		default:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
