package nstest

import (
	"os"
	"os/exec"
)

// CoverDirEnv names the directory where the binaries end-to-end tests
// build and run write their coverage counters (make cover); unset, they
// are built without coverage.
const CoverDirEnv = "MVLAN_E2E_COVERDIR"

// GoBuild builds pkgs into dst (a file, or a directory ending in "/") for
// an end-to-end test. With CoverDirEnv set, the binaries are built with
// -cover and every process the test starts from then on writes its
// counters there (GOCOVERDIR).
func GoBuild(dst string, pkgs ...string) ([]byte, error) {
	args := []string{"build", "-o", dst}
	if dir := os.Getenv(CoverDirEnv); dir != "" {
		args = append(args, "-cover")
		if err := os.Setenv("GOCOVERDIR", dir); err != nil {
			return nil, err
		}
	}
	return exec.Command("go", append(args, pkgs...)...).CombinedOutput()
}
