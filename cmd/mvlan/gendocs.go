//go:build !urfave_cli_no_docs

package main

import (
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
)

// The man page (section 8) and the fish completion are generated from the command
// definitions by a build without the urfave_cli_no_docs tag (make
// package: go run ./cmd/mvlan gen-docs DIR). Installed binaries are built
// with the tag and leave this command, and the man-page code, out.
func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:      "gen-docs",
		Hidden:    true,
		Usage:     "write mvlan.8 (man page) and mvlan.fish (fish completion) into DIR",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("gen-docs takes DIR")
			}
			dir := c.Args().First()
			man, err := c.App.ToMan()
			if err != nil {
				return err
			}
			fish, err := c.App.ToFishCompletion()
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, "mvlan.8"), []byte(man), 0o644); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "mvlan.fish"), []byte(fish), 0o644)
		},
	})
}
