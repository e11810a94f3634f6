package rules

import (
	"os/exec"
	"testing"
)

// TestPromtool: the rules load (`promtool check rules`) and every alert
// fires in its firing case and stays silent in the other
// (`promtool test rules`, cases in mvlan.rules.test.yml).
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: apt-get install prometheus, or extract it from Debian's .deb as .ci/run does")
	}
	for _, args := range [][]string{
		{"check", "rules", "mvlan.rules.yml"},
		{"test", "rules", "mvlan.rules.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
