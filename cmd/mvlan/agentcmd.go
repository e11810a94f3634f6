package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"
)

// agentBin is the daemon's binary: the CLI links only the API client, so
// `mvlan agent` and `mvlan doctor` (which need netlink and BPF) run it.
const agentBin = "mvlan-agent"

// agentCommand runs the daemon (mvlan-agent) in this process's place.
func agentCommand() *cli.Command {
	return &cli.Command{
		Name:            "agent",
		Usage:           "run the daemon (" + agentBin + "): state, kernel links, BPF, API and /metrics; see mvlan agent --help",
		ArgsUsage:       "[AGENT FLAGS]",
		SkipFlagParsing: true,
		Action:          func(c *cli.Context) error { return execAgent(c) },
	}
}

// doctorCommand runs mvlan-agent doctor: the kernel probes need root, netlink and BPF.
func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:            "doctor",
		Usage:           "check the kernel features mvlan needs and say what a missing one means; see mvlan doctor --help",
		ArgsUsage:       "[--format json] [--bpffs DIR] [--socket PATH]",
		SkipFlagParsing: true,
		Action:          func(c *cli.Context) error { return execAgent(c, "doctor") },
	}
}

// execAgent replaces this process with mvlan-agent [--socket S] [sub] ARGS.
func execAgent(c *cli.Context, sub ...string) error {
	bin, err := findAgent()
	if err != nil {
		return err
	}
	argv := []string{bin}
	if c.IsSet("socket") {
		argv = append(argv, "--socket", c.String("socket"))
	}
	argv = append(append(argv, sub...), c.Args().Slice()...)
	return fmt.Errorf("run %s: %w", bin, syscall.Exec(bin, argv, os.Environ()))
}

// findAgent returns mvlan-agent next to this binary (where make build and
// the package put it), else the one in PATH.
func findAgent() (string, error) {
	exe, err := os.Executable()
	if err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			p := filepath.Join(filepath.Dir(exe), agentBin)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	p, err := exec.LookPath(agentBin)
	if err != nil {
		return "", errors.New(agentBin + " (the daemon) is neither next to the mvlan binary nor in PATH: install both (make build makes bin/mvlan and bin/mvlan-agent)")
	}
	return p, nil
}
