// Command mvlan is the command-line client of the mvlan agent: macvlan
// networks on NICs and 802.1q trunks for containers, as Docker's macvlan
// driver makes them, with an eBPF datapath that isolates and counts. It
// links only the API client and its printing (a test checks it), so each
// call costs little more than a process start; the daemon is mvlan-agent,
// which `mvlan agent` runs.
//
// A call lives a few milliseconds, so GOMAXPROCS stays the number of CPUs:
// the runtime does not start the goroutine that follows changes of the CPU
// limit (updatemaxprocs) nor use the cgroup's limit (containermaxprocs),
// which saves each call about 0.1 ms here (`mvlan --version`, 400 runs
// each way). The runtime still reads the cgroup files once at start.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/version"
)

// usageError is a command line the user has to correct: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	app := newApp()
	if n := len(os.Args); n > 1 && os.Args[n-1] == completionFlag {
		complete(os.Stdout, app, os.Args[:n-1])
		return
	}
	err := app.Run(interspersed(app, os.Args))
	if err == nil {
		return
	}
	var ce commandExit
	if errors.As(err, &ce) {
		if ce.msg != "" {
			fmt.Fprintln(os.Stderr, "mvlan: "+ce.msg)
		}
		os.Exit(ce.code)
	}
	// urfave/cli's own exits are for a command line it cannot run (an
	// unknown command: "No help topic for ..."): usage errors.
	if errors.As(err, new(cli.ExitCoder)) {
		fmt.Fprintln(os.Stderr, "mvlan: "+err.Error()+" (mvlan --help lists the commands)")
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "mvlan: "+err.Error())
	if errors.As(err, new(usageError)) {
		os.Exit(2)
	}
	os.Exit(1)
}

func newApp() *cli.App {
	return &cli.App{
		Name:            "mvlan",
		Usage:           "macvlan networks for containers, with an eBPF datapath that isolates and counts",
		Version:         version.Version,
		HideHelpCommand: true,
		// Values are taken whole, as Docker's CLI takes them: --label
		// desc=a,b is one label (urfave/cli would split it at the comma).
		// network create splits --subnet, --gateway and --ip-range
		// itself, as Docker's CLI does (createRequest).
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: api.DefaultSocket, EnvVars: []string{"MVLAN_SOCKET"}, Usage: "agent API socket"},
		},
		Commands: append([]*cli.Command{agentCommand(), networkCommand(), runCommand(), connectCommand(), disconnectCommand(),
			psCommand(), rmCommand(), statsCommand(), doctorCommand(), versionCommand()}, extraCommands...),
	}
}

// extraCommands are added by builds with more in them (gendocs.go).
var extraCommands []*cli.Command

func client(c *cli.Context) *api.Client { return api.NewClient(c.String("socket")) }

// withUsage marks flag errors of a subcommand as usage errors.
func withUsage(cmd *cli.Command) *cli.Command {
	cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	for _, sub := range cmd.Subcommands {
		withUsage(sub)
	}
	return cmd
}
