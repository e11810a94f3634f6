package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mvlan/mvlan/internal/nstest"
	"github.com/mvlan/mvlan/ipam"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRefused: what etcd answers that trying again does not cure is a
// refusal; an overload, a leader change, a timeout or no answer is not.
func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{rpctypes.ErrNoSpace, true},
		{rpctypes.ErrPermissionDenied, true},
		{rpctypes.ErrRequestTooLarge, true},
		{fmt.Errorf("txn: %w", rpctypes.ErrNoSpace), true},
		{status.Error(codes.PermissionDenied, "no"), true},
		{rpctypes.ErrTooManyRequests, false},
		{rpctypes.ErrNotLeader, false},
		{rpctypes.ErrNoLeader, false},
		{rpctypes.ErrTimeout, false},
		{context.DeadlineExceeded, false},
		{context.Canceled, false},
		{status.Error(codes.Unavailable, "connection refused"), false},
		{errors.New("plain"), false},
	} {
		if got := refused(tc.err); got != tc.want {
			t.Errorf("refused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestEtcdRefuses: with etcd's space quota reached (its NOSPACE alarm,
// raised here through its maintenance API) a lease is refused, and the
// error says so with etcd's reason and the cluster, not that etcd did not
// answer; once the alarm is disarmed the same lease goes through.
func TestEtcdRefuses(t *testing.T) {
	e := nstest.StartEtcd(t)
	cfg := ipam.PoolConfig{Subnet: netip.MustParsePrefix("10.61.0.0/24")}
	h := newHost(t, e.URL, "hostA", "net3", cfg, 28)
	ctx := context.Background()
	mc := pb.NewMaintenanceClient(h.c.cli.ActiveConnection())
	st, err := h.c.cli.Status(ctx, h.c.cli.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	alarm := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: st.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}
	if _, err := mc.Alarm(ctx, alarm); err != nil {
		t.Fatal(err)
	}
	_, err = h.p.Allocate(ctx, "ep0")
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("allocate with etcd's space quota reached: %v; want ErrRefused, not ErrUnreachable", err)
	}
	for _, want := range []string{"database space exceeded", e.URL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	alarm.Action = pb.AlarmRequest_DEACTIVATE
	if _, err := mc.Alarm(ctx, alarm); err != nil {
		t.Fatal(err)
	}
	if a, err := h.p.Allocate(ctx, "ep0"); err != nil || !a.IsValid() {
		t.Fatalf("allocate once the alarm is disarmed: %v, %v", a, err)
	}
}
