package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/format"
)

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\033[H\033[2J"

func statsCommand() *cli.Command {
	return withUsage(&cli.Command{
		Name:  "stats",
		Usage: "show the datapath counters: per VLAN and per network (traffic, drops, flood, hairpin, east-west)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "redraw every --interval with rates per second, until Ctrl-C"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "refresh interval of --watch"},
			formatFlag(),
		},
		Action: statsAction,
	})
}

func statsAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("stats takes no arguments, got %q", c.Args().First())
	}
	f, err := outputFormat(c)
	if err != nil {
		return err
	}
	interval := c.Duration("interval")
	if interval < 100*time.Millisecond {
		return usagef("--interval %s is too short; use 100ms or more (e.g. 1s)", interval)
	}
	cl := client(c)
	defer cl.Close()
	if c.Bool("watch") {
		return watchStats(c.Context, c.App.Writer, cl, f, interval)
	}
	s, err := cl.Stats(c.Context)
	if err != nil {
		return err
	}
	return writeStats(c.App.Writer, s, f)
}

// watchStats redraws the counters every interval until Ctrl-C (or
// SIGTERM); with --format json it writes one JSON document per line.
func watchStats(ctx context.Context, w io.Writer, cl *api.Client, f format.Format, interval time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var prev *api.Stats
	for {
		s, err := cl.Stats(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if err := drawStats(w, s, prev, f, interval); err != nil {
			return err
		}
		prev = &s
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func drawStats(w io.Writer, s api.Stats, prev *api.Stats, f format.Format, interval time.Duration) error {
	switch f.Kind {
	case format.JSON: // one reading per line
		return json.NewEncoder(w).Encode(s)
	case format.Template:
		return writeStats(w, s, f)
	}
	fmt.Fprint(w, clearScreen)
	fmt.Fprintf(w, "mvlan stats at %s, every %s (Ctrl-C to stop); totals (rate per second)\n\n",
		s.Time.Local().Format(time.TimeOnly), interval)
	return printStats(w, s, prev)
}

// writeStats prints one reading: the tables, the whole reading as JSON,
// or a template run on each network's counters (api.NetworkStats).
func writeStats(w io.Writer, s api.Stats, f format.Format) error {
	switch f.Kind {
	case format.JSON:
		return format.PrintJSON(w, s)
	case format.Template:
		return format.Write(w, f, s.Networks, nil)
	}
	return printStats(w, s, nil)
}

// printStats writes the per-VLAN, per-network and drop tables; with prev,
// each count is followed by its rate since prev.
func printStats(w io.Writer, s api.Stats, prev *api.Stats) error {
	r := newRater(s, prev)
	fmt.Fprintln(w, "Per VLAN (parent and trunk links)")
	vrows := make([][]string, 0, len(s.VLANs))
	for _, v := range s.VLANs {
		old, ok := r.vlans[vlanKey(v)]
		vrows = append(vrows, append([]string{v.Parent, strconv.Itoa(int(v.VLAN))}, r.traffic(v.Traffic, old, ok)...))
	}
	if err := format.PrintTable(w, []string{"PARENT", "VLAN", "RX PACKETS", "RX BYTES", "TX PACKETS", "TX BYTES"}, vrows); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nPer network (endpoint traffic; drops, flood, hairpin and east-west in packets)")
	nrows := make([][]string, 0, len(s.Networks))
	for _, n := range s.Networks {
		nrows = append(nrows, r.networkRow(n))
	}
	if err := format.PrintTable(w, []string{"NETWORK", "RX PACKETS", "RX BYTES", "TX PACKETS", "TX BYTES",
		"DROPS", "FLOOD", "HAIRPIN", "EAST-WEST"}, nrows); err != nil {
		return err
	}
	return printDrops(w, s)
}

// printDrops lists the policy drops by network and reason (non-zero ones)
// and any malformed frames.
func printDrops(w io.Writer, s api.Stats) error {
	var rows [][]string
	for _, n := range s.Networks {
		for _, reason := range slices.Sorted(maps.Keys(n.Drops)) {
			if c := n.Drops[reason]; c.Packets > 0 {
				rows = append(rows, []string{n.Network, reason, fmtUint(c.Packets), fmtUint(c.Bytes)})
			}
		}
	}
	fmt.Fprintln(w)
	if len(rows) == 0 {
		fmt.Fprintln(w, "Policy drops: none")
	} else {
		fmt.Fprintln(w, "Policy drops")
		if err := format.PrintTable(w, []string{"NETWORK", "REASON", "PACKETS", "BYTES"}, rows); err != nil {
			return err
		}
	}
	var bad []string
	for _, prog := range slices.Sorted(maps.Keys(s.Malformed)) {
		if c := s.Malformed[prog]; c.Packets > 0 {
			bad = append(bad, fmt.Sprintf("%s %d", prog, c.Packets))
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "Malformed frames (passed): %s\n", strings.Join(bad, ", "))
	}
	return nil
}

// rater formats counts, with their rate per second since a previous
// reading when there is one.
type rater struct {
	secs  float64 // since the previous reading; 0: no rates
	vlans map[string]api.Traffic
	nets  map[string]api.NetworkStats
}

func newRater(s api.Stats, prev *api.Stats) rater {
	r := rater{vlans: map[string]api.Traffic{}, nets: map[string]api.NetworkStats{}}
	if prev == nil {
		return r
	}
	r.secs = s.Time.Sub(prev.Time).Seconds()
	for _, v := range prev.VLANs {
		r.vlans[vlanKey(v)] = v.Traffic
	}
	for _, n := range prev.Networks {
		r.nets[n.Network] = n
	}
	return r
}

func vlanKey(v api.VLANStats) string { return v.Parent + "\x00" + strconv.Itoa(int(v.VLAN)) }

func (r rater) networkRow(n api.NetworkStats) []string {
	old, ok := r.nets[n.Network]
	row := append([]string{n.Network}, r.traffic(n.Traffic, old.Traffic, ok)...)
	return append(row,
		r.cell(n.DropTotal().Packets, old.DropTotal().Packets, ok, false),
		r.cell(n.FloodTotal().Packets, old.FloodTotal().Packets, ok, false),
		r.cell(api.VLANTotal(n.Hairpin).Packets, api.VLANTotal(old.Hairpin).Packets, ok, false),
		r.cell(api.VLANTotal(n.EastWest).Packets, api.VLANTotal(old.EastWest).Packets, ok, false))
}

// traffic is rx packets, rx bytes, tx packets, tx bytes.
func (r rater) traffic(t, old api.Traffic, ok bool) []string {
	return []string{
		r.cell(t.Rx.Packets, old.Rx.Packets, ok, false), r.cell(t.Rx.Bytes, old.Rx.Bytes, ok, true),
		r.cell(t.Tx.Packets, old.Tx.Packets, ok, false), r.cell(t.Tx.Bytes, old.Tx.Bytes, ok, true),
	}
}

// cell is "TOTAL" or, with a previous reading, "TOTAL (RATE/s)". A
// counter that went down (its network was re-created) has no rate.
func (r rater) cell(cur, old uint64, ok, bytes bool) string {
	if r.secs <= 0 {
		return fmtUint(cur)
	}
	if !ok {
		old = 0
	}
	if cur < old {
		return fmtUint(cur) + " (-)"
	}
	return fmt.Sprintf("%d (%s/s)", cur, humanRate(float64(cur-old)/r.secs, bytes))
}

// humanRate shortens a rate: 12, 1.5k, 3.2M (bytes: 12B, 1.5kB, 3.2MB).
func humanRate(v float64, bytes bool) string {
	unit := ""
	if bytes {
		unit = "B"
	}
	if v < 1000 {
		return fmt.Sprintf("%.0f%s", v, unit)
	}
	const prefixes = "kMGT"
	i := 0
	for v /= 1000; v >= 1000 && i < len(prefixes)-1; i++ {
		v /= 1000
	}
	return fmt.Sprintf("%.1f%c%s", v, prefixes[i], unit)
}

func fmtUint(v uint64) string { return strconv.FormatUint(v, 10) }
