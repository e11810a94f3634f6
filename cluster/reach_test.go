package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mvlan/mvlan/internal/nstest"
)

// records is a slog handler that keeps what is logged.
type records struct {
	mu  sync.Mutex
	got []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec)
	return nil
}

// count is how many records of level have msg in their message.
func (r *records) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.got {
		if rec.Level == level && strings.Contains(rec.Message, msg) {
			n++
		}
	}
	return n
}

// TestEtcdDownLoggedOnce: a client of a plain-http etcd warns of it once
// when it is made; its liveness loop warns once that etcd stopped
// answering, however many beats fail, and says once that it answers
// again.
func TestEtcdDownLoggedOnce(t *testing.T) {
	e := nstest.StartEtcd(t)
	log := &records{}
	c, err := Dial(Config{URL: e.URL, Host: "hostA", Timeout: 300 * time.Millisecond, Dir: t.TempDir(),
		TTL: 2 * time.Second, Grace: 4 * time.Second, Log: slog.New(log)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Live(ctx)
	}()
	time.Sleep(time.Second)
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // four beats or so fail
	if err := e.Cont(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	cancel()
	<-done
	for _, tc := range []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelWarn, "plain http"},
		{slog.LevelWarn, "etcd stopped answering"},
		{slog.LevelInfo, "etcd answers again"},
	} {
		if n := log.count(tc.level, tc.msg); n != 1 {
			t.Errorf("%d %v records %q; want 1", n, tc.level, tc.msg)
		}
	}
}
