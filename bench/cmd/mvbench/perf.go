package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// profiler records CPU profiles with perf (-profile) and writes the top of
// each report next to the markdown: profile-NAME.txt.
type profiler struct {
	e   *env
	dir string
}

func (e *env) profiler() *profiler {
	if !e.cfg.profile {
		return nil
	}
	return &profiler{e: e, dir: filepath.Dir(e.cfg.mdPath)}
}

// start records the whole machine (pid 0) or one process until the
// returned function is called, which writes the report (of the processes
// named comm only, if given).
func (p *profiler) start(name string, pid int, comm string) func() {
	if p == nil {
		return func() {}
	}
	data := filepath.Join(p.e.tmp, "perf-"+name+".data")
	target := []string{"-a"}
	if pid > 0 {
		target = []string{"-p", strconv.Itoa(pid)}
	}
	cmd := exec.Command("perf", append([]string{"record", "-q", "-g", "-F", "999", "-o", data}, target...)...)
	if err := cmd.Start(); err != nil {
		progress("profile %s: %v", name, err)
		return func() {}
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		out := filepath.Join(p.dir, "profile-"+name+".txt")
		var rep []byte
		for _, view := range [][]string{
			{"--no-children", "--sort", "comm,dso,symbol"}, // where the cycles are
			{"--children", "--sort", "symbol"},             // who spends them
		} {
			args := append([]string{"report", "-i", data, "--stdio", "-g", "none", "--percent-limit", "0.5"}, view...)
			if comm != "" {
				args = append(args, "--comms", comm)
			}
			out, err := exec.Command("perf", args...).Output()
			if err != nil {
				progress("profile %s: perf report: %v", name, err)
				return
			}
			rep = append(rep, out...)
		}
		if err := os.MkdirAll(p.dir, 0o755); err == nil {
			err = os.WriteFile(out, rep, 0o644)
			if err != nil {
				progress("profile %s: %v", name, err)
			}
		}
		_ = os.Remove(data)
		progress("profile %s: %s", name, out)
	}
}

func (p *profiler) note() string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf(" Profiles (perf, -profile): `%s/profile-*.txt`.", p.dir)
}
