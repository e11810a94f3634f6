package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// runStats reads the kernel's own run time of the TC programs in place
// (BPF_ENABLE_STATS: each run timed with sched_clock while enabled), so
// that what a program costs on the real path, its caches and branch
// history as the rest of the stack leaves them, is seen next to
// BPF_PROG_TEST_RUN's warm loop. The timing adds the same to every
// program, the empty one included.
type runStats struct {
	closer io.Closer
	acc    map[string]map[string]progRuns // datapath key -> program name -> runs
}

type progRuns struct {
	ns, runs uint64
}

func enableRunStats() (*runStats, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable BPF run time statistics: %w", err)
	}
	return &runStats{closer: c, acc: map[string]map[string]progRuns{}}, nil
}

func (s *runStats) Close() error { return s.closer.Close() }

// snapshot is the TC programs' total run time and count now, by name
// (mvlan loads each of its programs once).
func (s *runStats) snapshot() map[string]progRuns {
	out := map[string]progRuns{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return out
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		if ierr == nil && serr == nil && info.Type == ebpf.SchedCLS {
			name := cmp.Or(info.Name, "empty") // mvbench's own has none
			t := out[name]
			out[name] = progRuns{t.ns + uint64(st.Runtime), t.runs + st.RunCount}
		}
		p.Close()
	}
}

// add adds to key what ran between two snapshots (programs that ran at
// least minRuns times: not the agent's occasional ones).
func (s *runStats) add(key string, before, after map[string]progRuns) {
	const minRuns = 1000
	if s.acc[key] == nil {
		s.acc[key] = map[string]progRuns{}
	}
	for prog, a := range after {
		d := progRuns{a.ns - before[prog].ns, a.runs - before[prog].runs}
		if d.runs >= minRuns {
			t := s.acc[key][prog]
			s.acc[key][prog] = progRuns{t.ns + d.ns, t.runs + d.runs}
		}
	}
}

// rows are key's programs, by name: name, runs, ns per run.
func (s *runStats) rows(key string) [][]string {
	var rows [][]string
	for prog, r := range s.acc[key] {
		rows = append(rows, []string{prog, fmt.Sprint(r.runs), fmt.Sprintf("%.1f", float64(r.ns)/float64(r.runs))})
	}
	slices.SortFunc(rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	return rows
}
