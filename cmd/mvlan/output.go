package main

import (
	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/internal/format"
)

// formatFlag is --format (with -f where Docker has it: version).
func formatFlag(aliases ...string) cli.Flag {
	return formatFlagOf("table (default), json", aliases)
}

// inspectFormatFlag is network inspect's --format (-f): JSON unless a
// template is given, as Docker's.
func inspectFormatFlag() cli.Flag {
	return formatFlagOf("json (the default; table gives it too)", []string{"f"})
}

func formatFlagOf(kinds string, aliases []string) cli.Flag {
	return &cli.StringFlag{Name: "format", Aliases: aliases,
		Usage: kinds + ", or a Go template run on each object, e.g. '{{.Name}}' or 'table {{.ID}}\\t{{.Name}}' (functions: json join split upper lower title pad truncate println)"}
}

// outputFormat returns the parsed --format value.
func outputFormat(c *cli.Context) (format.Format, error) {
	f, err := format.Parse(c.String("format"))
	if err != nil {
		return format.Format{}, usageError{err}
	}
	return f, nil
}

// idOf is how ls and ps show an ID in their table, -q and templates, as
// Docker's: 12 characters, whole with --no-trunc.
func idOf(c *cli.Context) func(string) string {
	if c.Bool("no-trunc") {
		return func(s string) string { return s }
	}
	return short
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
