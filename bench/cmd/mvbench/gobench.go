package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// buildTest compiles the test binary of a package (go test -c) into the
// scratch directory, once, so each repetition is one process run.
func (e *env) buildTest(ctx context.Context, pkg string) (string, error) {
	bin := filepath.Join(e.tmp, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_")+".test")
	out, err := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go test -c %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// benchLine is one result line of `go test -bench`.
type benchLine struct {
	name    string // without the -GOMAXPROCS suffix
	n       int
	metrics map[string]float64 // by unit: ns/op, ns/run, heap-MiB, ...
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parseBench reads the result lines of benchmark output.
func parseBench(out string) []benchLine {
	var res []benchLine
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		bl := benchLine{name: procSuffix.ReplaceAllString(f[0], ""), n: n, metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				bl.metrics[f[i+1]] = v
			}
		}
		res = append(res, bl)
	}
	return res
}

// runBench runs one benchmark pattern of a test binary in namespace ns
// ("" for the current one) and returns its result lines.
func runBench(ctx context.Context, ns, bin, pattern, benchtime string) ([]benchLine, error) {
	argv := []string{"-test.run", "^$", "-test.bench", pattern, "-test.benchtime", benchtime, "-test.count", "1"}
	cmd := exec.CommandContext(ctx, bin, argv...)
	if ns != "" {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + ns, "--", bin}, argv...)...)
	}
	cmd.Dir = filepath.Dir(bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s -test.bench %s: %v\n%s", filepath.Base(bin), pattern, err, out)
	}
	lines := parseBench(string(out))
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s -test.bench %s: no results\n%s", filepath.Base(bin), pattern, out)
	}
	return lines, nil
}
