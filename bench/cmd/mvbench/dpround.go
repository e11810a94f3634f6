package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// dpRounds is how many rounds the datapath section measures: many short
// runs, since a run's rate on a VM moves from one run to the next by more
// than the differences measured.
func dpRounds(cfg config) int {
	if cfg.quick {
		return cfg.reps
	}
	return max(20, 4*cfg.reps)
}

// dpResults are the datapaths' samples, by key.
type dpResults struct{ tcp, udp, iperfUDP map[string]samples }

// round measures each pair once, in the order rotated by round: TCP
// (iperf3 -t 1), UDP (the blaster, 1 s) and, when iperfSecs > 0,
// iperf3's UDP for reference.
func (r dpResults) round(ctx context.Context, pairs []*dpPair, round, iperfSecs int) error {
	order := append(append([]*dpPair{}, pairs[round%len(pairs):]...), pairs[:round%len(pairs)]...)
	var tcp, udp []string
	for _, p := range order {
		g, err := iperfTCP(ctx, p, 1, round)
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
		r.tcp[p.key] = append(r.tcp[p.key], g)
		tcp = append(tcp, fmt.Sprintf("%s %.2f", p.key, g))
	}
	for _, p := range order {
		rx, _, err := udpRate(ctx, p, 300*time.Millisecond, time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
		r.udp[p.key] = append(r.udp[p.key], rx/1e3)
		udp = append(udp, fmt.Sprintf("%s %.0f", p.key, rx/1e3))
	}
	progress("datapath round %d: TCP Gbit/s: %s; UDP 64 B kpps: %s", round+1, strings.Join(tcp, ", "), strings.Join(udp, ", "))
	if iperfSecs == 0 {
		return nil
	}
	var ref []string
	for _, p := range order {
		k, err := iperfUDP64(ctx, p, iperfSecs)
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
		r.iperfUDP[p.key] = append(r.iperfUDP[p.key], k)
		ref = append(ref, fmt.Sprintf("%s %.0f", p.key, k))
	}
	progress("datapath round %d: iperf3 UDP kpps (receiver): %s", round+1, strings.Join(ref, ", "))
	return nil
}
