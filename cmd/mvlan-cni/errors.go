package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/mvlan/mvlan/api"
)

// Plugin-specific error codes (the spec leaves 100 and up to plugins).
const (
	// errConflict: the request clashes with what the agent holds (an
	// address or MAC in use, a name taken, a different network of that
	// name); nothing changed.
	errConflict uint = 100
	// errDrift: CHECK found the attachment differs from what was made.
	errDrift uint = 101
)

// STATUS codes of the spec.
const (
	errUnavailable         uint = 50 // cannot service ADD
	errLimitedConnectivity uint = 51 // and existing attachments may suffer
)

// socketHelp is what to do about a socket this process may not use.
const socketHelp = "run the runtime as root or as a member of the socket's group (mvlan agent --socket-group), or point \"socket\" at one it may use"

// toCNI turns an error of the agent's API into a CNI error whose message
// says what to fix: an agent that cannot be reached is 11 (try again
// later) naming the socket, as is work under way on the same thing; one
// whose socket this process may not use 5 (I/O failure); a bad request 7,
// a clash errConflict.
func toCNI(err error, socket string) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, api.ErrUnreachable) && errors.Is(err, fs.ErrPermission) {
		// The agent may well be running: trying again changes nothing.
		return types.NewError(types.ErrIOFailure, err.Error()+": "+socketHelp, "")
	}
	if errors.Is(err, api.ErrUnreachable) {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("cannot reach the mvlan agent at %s: start it (mvlan agent), or point \"socket\" in the network configuration (or MVLAN_SOCKET) at its socket", socket),
			err.Error())
	}
	if errors.Is(err, api.ErrNoAnswer) {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("the mvlan agent at %s stopped answering half way (it finishes or undoes the operation when it runs again): try again", socket),
			err.Error())
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	switch ae.Kind {
	case api.KindInvalid, api.KindNotFound:
		return types.NewError(types.ErrInvalidNetworkConfig, ae.Message, "")
	case api.KindConflict:
		return types.NewError(errConflict, ae.Message, "")
	case api.KindBusy:
		return types.NewError(types.ErrTryAgainLater, ae.Message, "")
	}
	return types.NewError(types.ErrInternal, "mvlan agent: "+ae.Message, "")
}
