package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
)

func endpointFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "ip", Usage: "IPv4 address (default: the next free one)"},
		&cli.StringFlag{Name: "ip6", Usage: "IPv6 address (default: the next free one on --ipv6 networks)"},
		&cli.StringFlag{Name: "mac", Usage: "MAC address (default: random, locally administered)"},
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
		ArgsUsage: "NETWORK NETNS-PATH",
		Flags:     append(endpointFlags(), &cli.StringFlag{Name: "name", Usage: "endpoint name (default: from the path)"}),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("connect takes NETWORK and NETNS-PATH, got %d arguments", c.NArg())
			}
			req := endpointRequest(c, c.Args().Get(0))
			req.Netns = c.Args().Get(1)
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
		ArgsUsage: "NETWORK NETNS-PATH",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usagef("disconnect takes NETWORK and NETNS-PATH, got %d arguments", c.NArg())
			}
			cl := client(c)
			defer cl.Close()
			return cl.Disconnect(c.Context, c.Args().Get(0), c.Args().Get(1))
		},
	})
}

func psCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:                   "ps",
		Usage:                  "list containers (endpoints)",
		UseShortOptionHandling: true,
		Flags: []cli.Flag{formatFlag(),
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only IDs"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "all (accepted for docker compatibility; mvlan always lists all)"}},
		Action: ps,
	})
}

func ps(c *cli.Context) error {
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
	switch {
	case c.Bool("quiet"):
		for _, e := range eps {
			fmt.Fprintln(c.App.Writer, short(e.ID))
		}
		return nil
	case f == "json":
		return printJSON(c.App.Writer, eps)
	}
	rows := make([][]string, 0, len(eps))
	for _, e := range eps {
		addrs := make([]string, 0, len(e.Addrs))
		for _, p := range e.Addrs {
			addrs = append(addrs, p.String())
		}
		rows = append(rows, []string{short(e.ID), e.Name, e.Network, strings.Join(addrs, ","), e.MAC, e.IfName, e.Netns})
	}
	return printTable(c.App.Writer, []string{"CONTAINER ID", "NAME", "NETWORK", "ADDRESSES", "MAC", "IFACE", "NETNS"}, rows)
}

func rmCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:      "rm",
		Usage:     "remove containers: their endpoints, addresses and the namespaces mvlan made",
		ArgsUsage: "NAME|ID...",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove even if processes run in it"}},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("rm needs at least one container NAME or ID")
			}
			cl := client(c)
			defer cl.Close()
			var errs []error
			for _, ref := range c.Args().Slice() {
				if err := cl.RemoveEndpoint(c.Context, ref, c.Bool("force")); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(c.App.Writer, ref)
			}
			return errors.Join(errs...)
		},
	})
}
