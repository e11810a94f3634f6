package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
)

// completionFlag, last on a command line, asks for the completions of the
// words before it (packaging/completion's scripts pass it). mvlan answers
// it itself from the command definitions: urfave/cli v2's own answer
// panics below a subcommand (network inspect).
const completionFlag = "--generate-bash-completion"

// complete prints one candidate per line for the word after words: the
// flags of the command reached when that word starts with "-", else its
// subcommands, or the networks or containers the agent knows where the
// command takes them.
func complete(w io.Writer, app *cli.App, words []string) {
	cur := ""
	if n := len(words); n > 1 && strings.HasPrefix(words[n-1], "-") {
		cur, words = words[n-1], words[:n-1]
	}
	flags, cmds, path := app.Flags, app.Commands, []string{}
	for _, word := range words[1:] {
		if strings.HasPrefix(word, "-") {
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(word) {
				next = c
			}
		}
		if next == nil {
			break
		}
		flags, cmds, path = next.Flags, next.Subcommands, append(path, next.Name)
	}
	if cur != "" {
		for _, f := range flags {
			for _, n := range f.Names() {
				fmt.Fprintln(w, map[bool]string{true: "-", false: "--"}[len(n) == 1]+n)
			}
		}
		fmt.Fprintln(w, "--help")
		return
	}
	for _, c := range cmds {
		if !c.Hidden {
			fmt.Fprintln(w, c.Name)
		}
	}
	for _, name := range objectNames(strings.Join(path, " ")) {
		fmt.Fprintln(w, name)
	}
}

// objectNames are the names the command (its path, e.g. "network rm")
// takes as arguments, asked from the agent (nothing if it does not answer
// within a second).
func objectNames(path string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	socket := os.Getenv("MVLAN_SOCKET")
	if socket == "" {
		socket = api.DefaultSocket
	}
	cl := api.NewClient(socket)
	defer cl.Close()
	var names []string
	switch path {
	case "network inspect", "network rm", "network update", "connect", "disconnect":
		ns, _ := cl.Networks(ctx)
		for _, n := range ns {
			names = append(names, n.Name)
		}
	case "rm":
		eps, _ := cl.Endpoints(ctx)
		for _, e := range eps {
			names = append(names, e.Name)
		}
	}
	return names
}
