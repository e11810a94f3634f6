package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/mvlan/mvlan/api"
)

func TestToCNI(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code uint
		msg  string // a part of the message
	}{
		{"unreachable", fmt.Errorf("dial: %w", api.ErrUnreachable), types.ErrTryAgainLater, "/run/x.sock"},
		{"no answer", fmt.Errorf("read: %w", api.ErrNoAnswer), types.ErrTryAgainLater, "stopped answering"},
		{"invalid", &api.Error{Message: "bad subnet", Kind: api.KindInvalid}, types.ErrInvalidNetworkConfig, "bad subnet"},
		{"not found", &api.Error{Message: "no net", Kind: api.KindNotFound}, types.ErrInvalidNetworkConfig, "no net"},
		{"conflict", &api.Error{Message: "in use", Kind: api.KindConflict}, errConflict, "in use"},
		{"busy", &api.Error{Message: "being removed; try again", Kind: api.KindBusy}, types.ErrTryAgainLater, "being removed"},
		{"internal", &api.Error{Message: "boom", Kind: api.KindInternal}, types.ErrInternal, "mvlan agent: boom"},
		{"other", errors.New("odd"), types.ErrInternal, "odd"},
		{"cni error kept", types.NewError(types.ErrDecodingFailure, "json", ""), types.ErrDecodingFailure, "json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var te *types.Error
			if err := toCNI(tc.err, "/run/x.sock"); !errors.As(err, &te) || te.Code != tc.code || !strings.Contains(te.Msg, tc.msg) {
				t.Errorf("toCNI(%v) = %v; want code %d with %q", tc.err, err, tc.code, tc.msg)
			}
		})
	}
	if err := toCNI(nil, "/run/x.sock"); err != nil {
		t.Errorf("toCNI(nil) = %v", err)
	}
}
