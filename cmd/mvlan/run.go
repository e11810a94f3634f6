package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/nsthread"
	"github.com/vishvananda/netns"
)

func runCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:                   "run",
		Usage:                  "start a container (a named network namespace) on a network, optionally running a command in it",
		ArgsUsage:              "[--] [COMMAND [ARG...]]",
		UseShortOptionHandling: true,
		Flags: append(endpointFlags(),
			&cli.StringFlag{Name: "net", Aliases: []string{"network"}, Usage: "network to attach to (required)"},
			&cli.StringFlag{Name: "name", Usage: "container name: the namespace is /run/netns/NAME (default: generated)"},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "leave it running and print its name"},
			&cli.BoolFlag{Name: "rm", Usage: "remove the container when the command exits"},
			&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "accepted for docker compatibility (stdin is always attached)"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "accepted for docker compatibility (the terminal is shared)"},
		),
		Action: run,
	})
}

func run(c *cli.Context) error {
	if c.String("net") == "" {
		return usagef("run needs --net NETWORK")
	}
	if c.Bool("detach") && c.Bool("rm") {
		return usagef("--rm and -d together are not supported; remove a detached container with mvlan rm -f NAME")
	}
	cl := client(c)
	defer cl.Close()
	e, err := cl.CreateEndpoint(c.Context, endpointRequest(c, c.String("net")))
	if err != nil {
		return err
	}
	args := c.Args().Slice()
	if c.Bool("detach") {
		if len(args) > 0 {
			if err := startDetached(e.Netns, args); err != nil {
				return errors.Join(err, cl.RemoveEndpoint(context.WithoutCancel(c.Context), e.ID, true))
			}
		}
		fmt.Fprintln(c.App.Writer, e.Name)
		return nil
	}
	if len(args) == 0 {
		args = []string{shell()}
	}
	code, err := runAttached(e.Netns, args)
	if c.Bool("rm") {
		err = errors.Join(err, cl.RemoveEndpoint(context.WithoutCancel(c.Context), e.ID, true))
	}
	if err != nil && code != 0 {
		return commandExit{err.Error(), code}
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return commandExit{"", code}
	}
	return nil
}

// commandExit is how the command that run ran ended: mvlan exits with
// its code, saying msg if there is one.
type commandExit struct {
	msg  string
	code int
}

func (e commandExit) Error() string { return e.msg }

func shell() string {
	if s := os.Getenv("SHELL"); s != "" {
		return s
	}
	return "/bin/sh"
}

// runAttached runs args in the namespace with this terminal and returns
// its exit code. Interrupts go to the command, not to us.
func runAttached(netns string, args []string) (int, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Terminal signals reach the command by themselves; we outlive it to
	// clean up (--rm). SIGTERM and SIGHUP (terminal closed) are passed on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := startIn(netns, cmd); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return 127, err
		}
		return 0, err
	}
	proc := cmd.Process
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM || s == syscall.SIGHUP {
				_ = proc.Signal(s)
			}
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

// startDetached starts args in the namespace in a session of its own,
// without our terminal, and does not wait for it.
func startDetached(netns string, args []string) error {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startIn(netns, cmd); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// startIn starts cmd inside the network namespace at path: the fork
// happens on a thread that nsthread.Do has moved into the namespace (and moves
// back, or discards, afterwards).
func startIn(path string, cmd *exec.Cmd) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer ns.Close()
	if err := nsthread.Do(ns, cmd.Start); err != nil {
		return fmt.Errorf("start %s in %s: %w", cmd.Path, path, err)
	}
	return nil
}
