package agent

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// threadNice reads the calling thread's nice value (field 19 of
// /proc/thread-self/stat).
func threadNice(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) "
	n, err := strconv.Atoi(f[16])                            // field 19 of the line
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAtLowPriority: fn runs niced, the caller's thread is not.
func TestAtLowPriority(t *testing.T) {
	before := threadNice(t)
	if before >= scrapeNice {
		t.Skipf("the test runs at nice %d already", before)
	}
	var in int
	atLowPriority(func() { in = threadNice(t) })
	if in != scrapeNice {
		t.Errorf("nice inside = %d, want %d", in, scrapeNice)
	}
	if after := threadNice(t); after != before {
		t.Errorf("nice of the caller's thread %d -> %d", before, after)
	}
}
