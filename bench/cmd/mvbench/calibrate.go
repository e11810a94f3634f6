package main

import (
	"crypto/sha256"
	"fmt"
	"os/exec"
	"slices"
	"time"
)

// A calibration at the start and at the end of a run says how fast the
// machine was meanwhile, where the load average cannot (a virtual
// machine's CPUs taken by its host's other guests, busy disks): one CPU
// hashing a fixed buffer, and the spawn of a process, which the CLI, CNI
// and anchor figures are mostly made of. Runs whose calibrations differ
// compare only through their ratios to the alternatives measured beside
// them.

// calibration is one calibration's figures, in milliseconds.
type calibration struct {
	hashMs, spawnMs float64
}

// calibrate times sha256 of 64 MiB (the best of 3) and `/bin/true` (the
// median of 21 spawns).
func calibrate() calibration {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	var c calibration
	c.hashMs = 1e9
	for range 3 {
		t := time.Now()
		sha256.Sum256(buf)
		c.hashMs = min(c.hashMs, ms(time.Since(t)))
	}
	var spawns []float64
	for range 21 {
		t := time.Now()
		if exec.Command("/bin/true").Run() != nil {
			break
		}
		spawns = append(spawns, ms(time.Since(t)))
	}
	if len(spawns) > 0 {
		slices.Sort(spawns)
		c.spawnMs = spawns[len(spawns)/2]
	}
	return c
}

// calibrations records the start's and the end's in r and says them.
func (r *report) calibrations(start, end calibration) {
	r.set("machine.hash_64mib_ms_start", start.hashMs)
	r.set("machine.hash_64mib_ms_end", end.hashMs)
	r.set("machine.spawn_ms_start", start.spawnMs)
	r.set("machine.spawn_ms_end", end.spawnMs)
	r.calib = fmt.Sprintf("sha256 of 64 MiB %.1f / %.1f ms, `/bin/true` spawn p50 %.2f / %.2f ms", start.hashMs, end.hashMs, start.spawnMs, end.spawnMs)
}
