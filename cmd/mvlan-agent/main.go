// Command mvlan-agent is the mvlan daemon: it keeps the state, makes the
// kernel links, loads the eBPF datapath and serves the API the mvlan CLI
// talks to, the Docker plugin and /metrics. Operators start it as
// `mvlan agent` (which runs this binary) or through mvlan.service.
// `mvlan-agent doctor` (also `mvlan doctor`) checks the kernel.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/version"
)

// usagef is a command line the user has to correct: exit code 2.
func usagef(format string, args ...any) error { return cli.Exit(fmt.Sprintf(format, args...), 2) }

func main() {
	err := newApp().Run(os.Args)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "mvlan-agent: "+err.Error())
	code := 1
	if ec, ok := errors.AsType[cli.ExitCoder](err); ok {
		code = ec.ExitCode()
	}
	os.Exit(code)
}

func newApp() *cli.App {
	onUsage := func(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error(), 2) }
	return &cli.App{
		Name:            "mvlan-agent",
		Usage:           "the mvlan daemon: state, kernel links, BPF, API, Docker plugin and /metrics",
		UsageText:       "mvlan-agent [flags]  (or: mvlan agent [flags])\nmvlan-agent doctor [--format json]",
		Version:         version.Version,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError:    onUsage,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, EnvVars: []string{"MVLAN_SOCKET"}, Usage: "API socket"},
		}, agentFlags()...),
		Action:   runAgent,
		Commands: []*cli.Command{doctorCommand(onUsage)},
	}
}
