package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/cluster"
)

// levels is a slog handler that writes each record's level and message.
type levels struct{ out *[]string }

func (l levels) Enabled(context.Context, slog.Level) bool { return true }
func (l levels) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l levels) WithGroup(string) slog.Handler            { return l }
func (l levels) Handle(_ context.Context, r slog.Record) error {
	*l.out = append(*l.out, r.Level.String())
	return nil
}

// TestFailureLogOnce: reclaim failures of a network are warned of when
// they start or change, not at every tick, and an end of them is said
// once; etcd not answering is only debug (the liveness loop warns).
func TestFailureLogOnce(t *testing.T) {
	probe := errors.New("probe on eth0: link down")
	down := fmt.Errorf("list blocks: %w", cluster.ErrUnreachable)
	for _, tc := range []struct {
		name string
		errs []error
		want string
	}{
		{"quiet", []error{nil, nil}, ""},
		{"a failure, repeated, then gone", []error{probe, probe, probe, nil, nil}, "WARN INFO"},
		{"a failure that changes", []error{probe, errors.New("other"), errors.New("other")}, "WARN WARN"},
		{"etcd not answering", []error{down, down, nil}, "DEBUG DEBUG"},
	} {
		var got []string
		log := slog.New(levels{&got})
		var f failureLog
		for _, err := range tc.errs {
			f.note(log, "cnet", err)
		}
		if s := strings.Join(got, " "); s != tc.want {
			t.Errorf("%s: logged %q, want %q", tc.name, s, tc.want)
		}
	}
}
