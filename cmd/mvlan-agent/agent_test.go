package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// TestDefaultFileHasEveryFlag: /etc/default/mvlan (the package's
// packaging/mvlan.default) names every agent flag that has an environment
// variable, commented out, with the flag's default (empty where it has none).
func TestDefaultFileHasEveryFlag(t *testing.T) {
	data, err := os.ReadFile("../../packaging/mvlan.default")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), "="); ok && strings.HasPrefix(k, "MVLAN_") {
			vars[k] = v
		}
	}
	n := 0
	for _, f := range agentFlags() {
		env, def := flagEnv(f)
		for _, name := range env {
			n++
			v, ok := vars[name]
			switch {
			case !ok:
				t.Errorf("packaging/mvlan.default has no #%s= (flag --%s)", name, f.Names()[0])
			case v != def:
				t.Errorf("packaging/mvlan.default: #%s=%s; want the flag's default %s", name, v, def)
			}
		}
	}
	if n == 0 {
		t.Fatal("no agent flag has an environment variable")
	}
}

// flagEnv is f's environment variables and its default as the file
// writes it ("" for none).
func flagEnv(f cli.Flag) ([]string, string) {
	switch f := f.(type) {
	case *cli.StringFlag:
		return f.EnvVars, f.Value
	case *cli.DurationFlag:
		return f.EnvVars, time.Duration(f.Value).String()
	case *cli.BoolFlag:
		return f.EnvVars, fmt.Sprint(f.Value)
	}
	panic(fmt.Sprintf("flag type %T", f))
}
