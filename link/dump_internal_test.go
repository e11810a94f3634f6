package link

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestRetryDump: a dump a concurrent change interrupted (netlink returns
// the partial list with ErrDumpInterrupted) is run again, up to dumpTries
// times in all; another error, or success, ends it at once.
func TestRetryDump(t *testing.T) {
	interrupted := fmt.Errorf("dump: %w", netlink.ErrDumpInterrupted)
	other := errors.New("no such device")
	tests := []struct {
		name      string
		errs      []error // the dump's answers, in turn; nil: the whole list
		wantCalls int
		wantErr   error
	}{
		{"whole at once", []error{nil}, 1, nil},
		{"interrupted twice", []error{interrupted, interrupted, nil}, 3, nil},
		{"interrupted always", []error{interrupted, interrupted, interrupted, interrupted, interrupted, nil}, dumpTries, netlink.ErrDumpInterrupted},
		{"another error", []error{other, nil}, 1, other},
		{"interrupted, then another error", []error{interrupted, other, nil}, 2, other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := retryDump(func() ([]int, error) {
				err := tt.errs[calls]
				calls++
				if err != nil {
					return []int{1}, err // partial
				}
				return []int{1, 2, 3}, nil
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("retryDump: %d calls, %v; want %d, %v", calls, err, tt.wantCalls, tt.wantErr)
			}
			if err == nil && len(got) != 3 {
				t.Errorf("retryDump returned %v; want the whole list", got)
			}
		})
	}
}
