package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Sentinels for errors.Is; the typed errors below wrap them.
var (
	// ErrExhausted: no free address is left for dynamic allocation.
	ErrExhausted = errors.New("no free address")
	// ErrTaken: the requested address is held by an endpoint.
	ErrTaken = errors.New("address already in use")
	// ErrReserved: the requested address is a gateway, aux-address,
	// network, broadcast or subnet-router anycast address.
	ErrReserved = errors.New("address is reserved")
	// ErrOutside: the address is in none of the network's subnets.
	ErrOutside = errors.New("address outside every subnet")
	// ErrNoFamily: Allocate asked for a family the network has no pool of.
	ErrNoFamily = errors.New("no subnet of that address family")
	// ErrInvalidConfig: Pair or New rejected the configuration.
	ErrInvalidConfig = errors.New("invalid address pool configuration")
	// ErrNoRoom (with ErrInvalidConfig): an ip-range has no address to
	// hand out besides the gateway (given, or inferred when not) and the
	// reserved ones.
	ErrNoRoom = errors.New("ip-range has no address to hand out")
)

// ExhaustedError is returned by Allocate when every pool of the requested
// family is full. Pool and Range describe the first pool of the family,
// Others the further pools of that family, in order.
type ExhaustedError struct {
	Pool   netip.Prefix
	Range  netip.Prefix // zero when the pool has no ip-range
	Others []ExhaustedError
}

func (e *ExhaustedError) describe() string {
	if e.ranged() {
		return fmt.Sprintf("%s (ip-range %s)", e.Pool, e.Range)
	}
	return e.Pool.String()
}

func (e *ExhaustedError) Error() string {
	var b strings.Builder
	b.WriteString("no free address in ")
	b.WriteString(e.describe())
	ranged := e.ranged()
	for i := range e.Others {
		b.WriteString(" nor in ")
		b.WriteString(e.Others[i].describe())
		ranged = ranged || e.Others[i].ranged()
	}
	b.WriteString("; remove a container from the network")
	if ranged {
		flag := "--ip"
		if e.Pool.Addr().Is6() {
			flag = "--ip6"
		}
		fmt.Fprintf(&b, ", give %s with a free address of the subnet outside the ip-range (any is allowed)", flag)
		b.WriteString(", or recreate the network with a wider --ip-range")
	} else {
		b.WriteString(", or recreate the network with a wider --subnet")
	}
	return b.String()
}

// ranged reports whether the pool's ip-range leaves addresses of its
// subnet out of dynamic allocation.
func (e *ExhaustedError) ranged() bool { return e.Range.IsValid() && e.Range != e.Pool }

// Unwrap makes errors.Is(err, ErrExhausted) true.
func (e *ExhaustedError) Unwrap() error { return ErrExhausted }

// TakenError is returned by Request when the address is already held.
type TakenError struct {
	Addr  netip.Addr
	Owner string
}

func (e *TakenError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("address %s is already in use", e.Addr)
	}
	return fmt.Sprintf("address %s is already in use by %s", e.Addr, DescribeOwner(e.Owner))
}

// DescribeOwner names the holder owner (see Held.Owner) in a message:
// "endpoint NAME" for an endpoint's name, a phrase ("the host shim") as it
// is.
func DescribeOwner(owner string) string {
	if owner == "" || strings.ContainsAny(owner, " \t") {
		return owner
	}
	return "endpoint " + owner
}

// Unwrap makes errors.Is(err, ErrTaken) true.
func (e *TakenError) Unwrap() error { return ErrTaken }

// HintTaken adds to err, when it is a *TakenError of an address asked
// for with --ip (--ip6 for IPv6), what to do instead; other errors are
// returned as they are.
func HintTaken(err error) error {
	var te *TakenError
	if !errors.As(err, &te) {
		return err
	}
	flag := "--ip"
	if te.Addr.Is6() {
		flag = "--ip6"
	}
	return fmt.Errorf("%w; pick another address or leave %s out", err, flag)
}

// ReservedError is returned by Request for an address that is never
// assigned. Reason is "gateway", "aux-address NAME", "the network address",
// "the broadcast address" or "the subnet-router anycast address".
type ReservedError struct {
	Addr   netip.Addr
	Subnet netip.Prefix
	Reason string
}

func (e *ReservedError) Error() string {
	return fmt.Sprintf("address %s is reserved in %s (%s); pick another address",
		e.Addr, e.Subnet, e.Reason)
}

// Unwrap makes errors.Is(err, ErrReserved) true.
func (e *ReservedError) Unwrap() error { return ErrReserved }

// OutsideError is returned for an address that is in none of the subnets.
type OutsideError struct {
	Addr    netip.Addr
	Subnets []netip.Prefix
}

func (e *OutsideError) Error() string {
	list := "none"
	if len(e.Subnets) > 0 {
		s := make([]string, len(e.Subnets))
		for i, p := range e.Subnets {
			s[i] = p.String()
		}
		list = strings.Join(s, ", ")
	}
	return fmt.Sprintf("address %s is outside every subnet of this network (%s)", e.Addr, list)
}

// Unwrap makes errors.Is(err, ErrOutside) true.
func (e *OutsideError) Unwrap() error { return ErrOutside }

// noFamilyError names the missing family; errors.Is(err, ErrNoFamily).
type noFamilyError struct{ v6 bool }

func (e *noFamilyError) Error() string {
	if e.v6 {
		return "this network has no IPv6 subnet (create it with --ipv6 --subnet=...)"
	}
	return "this network has no IPv4 subnet (give it an IPv4 --subnet)"
}

func (e *noFamilyError) Unwrap() error { return ErrNoFamily }

// ConfigError is a rejected pool configuration; errors.Is(err,
// ErrInvalidConfig) holds. Its message names the bad value and what would
// be right.
type ConfigError struct {
	Msg  string
	also error // a sentinel besides ErrInvalidConfig (ErrNoRoom), or nil
}

func (e *ConfigError) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrInvalidConfig) true, and errors.Is of
// its other sentinel, if any.
func (e *ConfigError) Unwrap() []error {
	if e.also != nil {
		return []error{ErrInvalidConfig, e.also}
	}
	return []error{ErrInvalidConfig}
}

func configErr(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}
