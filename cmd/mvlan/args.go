package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed returns args with the flags that follow a command's
// arguments moved before them, so that `mvlan network inspect NET --format
// json` works as in Docker's CLI (urfave/cli stops at the first argument).
// Arguments after "--" stay arguments. Commands whose arguments are a
// command line (run) or go to another program (agent, doctor) are left as
// they are.
func interspersed(app *cli.App, args []string) []string {
	i, flags := 1, app.Flags
	var cmd *cli.Command
	args = slices.Clone(args)
	for i < len(args) {
		a := args[i]
		if dangling(flags, a, args[i+1:]) {
			args = slices.Delete(args, i, i+1)
			continue
		}
		if strings.HasPrefix(a, "-") && a != "-" && a != "--" {
			i += flagWidth(flags, a, args[i+1:])
			continue
		}
		var next *cli.Command
		if cmd == nil {
			next = app.Command(a)
		} else {
			next = cmd.Command(a)
		}
		if next == nil {
			break
		}
		cmd, flags = next, next.Flags
		i++
	}
	if cmd == nil || cmd.SkipFlagParsing || cmd.Name == "run" || len(cmd.Subcommands) > 0 {
		return args
	}
	var fl, pos []string
	rest := args[i:]
	dashdash := false
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		switch {
		case a == "--":
			dashdash = true
			pos = append(pos, rest[j+1:]...)
			j = len(rest)
		case dangling(flags, a, rest[j+1:]):
		case strings.HasPrefix(a, "-") && a != "-":
			w := flagWidth(flags, a, rest[j+1:])
			fl = append(fl, rest[j:j+w]...)
			j += w - 1
		default:
			pos = append(pos, a)
		}
	}
	out := append(slices.Clip(args[:i]), fl...)
	if dashdash {
		out = append(out, "--")
	}
	return append(out, pos...)
}

// flagWidth is how many tokens the flag token a takes among flags: 2 for
// "--name value", 1 for a bool, "--name=value", combined short bools
// (-qa) or an unknown flag (left for the parser to report).
func flagWidth(flags []cli.Flag, a string, rest []string) int {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") || len(rest) == 0 {
		return 1
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if _, isBool := f.(*cli.BoolFlag); isBool {
			return 1
		}
		return 2
	}
	return 1
}

// dangling reports whether a is a driver-option flag (-o, --opt) with no
// value, followed by another flag: the reference's `-o parent=eth0.60 -o
// -o macvlan_mode=bridge`, where the second -o would otherwise take the
// third as its value and leave macvlan_mode=bridge an argument. It is
// dropped. An option's value never starts with "-" (KEY=VALUE).
func dangling(flags []cli.Flag, a string, rest []string) bool {
	name := strings.TrimLeft(a, "-")
	if !strings.HasPrefix(a, "-") || len(rest) == 0 || !strings.HasPrefix(rest[0], "-") || rest[0] == "-" || name == "" || strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return slices.Contains(f.Names(), "opt")
		}
	}
	return false
}
