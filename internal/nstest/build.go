package nstest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// CoverDirEnv names the directory where the binaries end-to-end tests
// build and run write their coverage counters (make cover); unset, they
// are built without coverage.
const CoverDirEnv = "MVLAN_E2E_COVERDIR"

// RaceEnv, set to 1, has the binaries end-to-end tests build and run made
// with the race detector: a race in the agent makes it exit 66, which
// fails the test that stops it (make race).
const RaceEnv = "MVLAN_E2E_RACE"

// Slow scales d, a wait a test gives the binaries it runs, by how much
// slower they run: 3 times under RaceEnv, else 1.
func Slow(d time.Duration) time.Duration {
	if os.Getenv(RaceEnv) == "1" {
		return 3 * d
	}
	return d
}

// GoBuild builds pkgs into dst (a file, or a directory ending in "/") for
// an end-to-end test. With CoverDirEnv set, the binaries are built with
// -cover and every process the test starts from then on writes its
// counters there (GOCOVERDIR). With RaceEnv set they are built with
// -race.
func GoBuild(dst string, pkgs ...string) ([]byte, error) {
	args := []string{"build", "-o", dst}
	if os.Getenv(RaceEnv) == "1" {
		args = append(args, "-race")
	}
	if dir := os.Getenv(CoverDirEnv); dir != "" {
		args = append(args, "-cover")
		if err := os.Setenv("GOCOVERDIR", dir); err != nil {
			return nil, err
		}
	}
	return exec.Command("go", append(args, pkgs...)...).CombinedOutput()
}

// NoRaces fails t if the output of a process it ran (a binary built with
// RaceEnv) reports a data race; a process killed at the end of its test
// has no exit status to tell.
func NoRaces(t testing.TB, what, output string) {
	t.Helper()
	if i := strings.Index(output, "WARNING: DATA RACE"); i >= 0 {
		t.Errorf("%s raced:\n%s", what, output[i:])
	}
}
