package main

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/format"
	"github.com/mvlan/mvlan/version"
)

// versions is what mvlan version prints: this client and, when it
// answers, the agent (nil otherwise).
type versions struct {
	Client clientVersion
	Agent  *api.Version
}

type clientVersion struct {
	Version   string
	API       string
	GoVersion string
	Os        string
	Arch      string
}

func versionCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:  "version",
		Usage: "show the client's and the agent's versions, the API version and the kernel features in use",
		Flags: []cli.Flag{formatFlag("f")},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("version takes no arguments, got %q", c.Args().First())
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			v := versions{Client: clientVersion{Version: version.Version, API: version.API, GoVersion: runtime.Version(),
				Os: runtime.GOOS, Arch: runtime.GOARCH}}
			cl := client(c)
			defer cl.Close()
			av, aerr := cl.Version(c.Context)
			if aerr == nil {
				v.Agent = &av
			}
			if f.Kind == format.Table {
				printVersions(c, v, aerr)
			} else if err := format.Write(c.App.Writer, f, []versions{v}, nil); err != nil {
				return err
			}
			return aerr
		},
	})
}

// printVersions writes one line each: client, API, agent, kernel.
func printVersions(c *cli.Context, v versions, aerr error) {
	w := c.App.Writer
	fmt.Fprintf(w, "Client:  %s (%s, %s/%s)\n", v.Client.Version, v.Client.GoVersion, v.Client.Os, v.Client.Arch)
	fmt.Fprintf(w, "API:     %s\n", v.Client.API)
	if aerr != nil {
		fmt.Fprintln(w, "Agent:   not reachable")
		return
	}
	fmt.Fprintf(w, "Agent:   %s (API %s, %s)\n", v.Agent.Version, v.Agent.API, v.Agent.GoVersion)
	fmt.Fprintf(w, "Kernel:  %s (%s)\n", v.Agent.Kernel, strings.Join(v.Agent.Features, ", "))
}
