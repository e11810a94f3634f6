package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// helloSource is the yardstick of cli.version_vs_hello: the least a Go
// program costs to start, built by the same Go as mvlan.
const helloSource = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"

// runCLI times `mvlan --version` against a hello-world Go binary,
// interleaved (issue 12: the CLI links only the API client and printing,
// so its start costs little more than any Go program's).
func runCLI(ctx context.Context, e *env, r *report) error {
	dir, err := os.MkdirTemp("", "mvbench-hello-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hello := filepath.Join(dir, "hello")
	src := filepath.Join(dir, "hello.go")
	if err := os.WriteFile(src, []byte(helloSource), 0o644); err != nil {
		return err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", hello, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build hello-world: %v: %s", err, out)
	}
	n := 300
	if e.cfg.quick {
		n = 50
	}
	var version, hw samples
	for i := 0; i < n; i++ {
		d, _, err := timed(ctx, e.cfg.mvlan, "--version")
		if err != nil {
			return err
		}
		version = append(version, ms(d))
		if d, _, err = timed(ctx, hello); err != nil {
			return err
		}
		hw = append(hw, ms(d))
	}
	vs := ratio(version.median(), hw.median())
	progress("cli: mvlan --version p50 %.2f ms, hello-world p50 %.2f ms: %.2f×", version.median(), hw.median(), vs)
	r.set("cli.version_ms_p50", version.median())
	r.set("cli.hello_ms_p50", hw.median())
	r.set("cli.version_vs_hello", vs)
	s := r.section("cli: the CLI process")
	s.para("`mvlan --version` and a hello-world Go binary (CGO_ENABLED=0, same Go), %d runs each, interleaved.", n)
	t := s.table("binary", "p50 ms", "min", "max")
	t.row("`mvlan --version`", num(version.median()), num(version.min()), num(version.max()))
	t.row("hello-world", num(hw.median()), num(hw.min()), num(hw.max()))
	r.target("CLI start: `mvlan --version` p50 / hello-world p50", fmt.Sprintf("%.3f", vs), "<= 1.5", vs <= 1.5)
	return nil
}
