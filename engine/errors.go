package engine

import "errors"

// Kind classifies an error for front ends: what the caller did wrong, if
// anything. The HTTP API answers it as a status code.
type Kind uint8

// Error kinds; KindInternal is every error not tagged with another.
const (
	KindInternal Kind = iota
	KindInvalid       // the request is wrong; nothing changed
	KindNotFound      // what the request names does not exist
	KindConflict      // the request clashes with existing state
	KindBusy          // work under way on what it names; trying again may succeed
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindBusy:
		return "busy"
	}
	return "internal"
}

// Error tags an error with its kind.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the first tagged error in err's tree.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Invalid tags err as the caller's mistake.
func Invalid(err error) error { return &Error{KindInvalid, err} }

// NotFound tags err as naming something that does not exist.
func NotFound(err error) error { return &Error{KindNotFound, err} }

// Conflict tags err as clashing with existing state.
func Conflict(err error) error { return &Error{KindConflict, err} }

// Busy tags err as a clash with work under way that ends by itself.
func Busy(err error) error { return &Error{KindBusy, err} }

func invalid(err error) error  { return Invalid(err) }
func notFound(err error) error { return NotFound(err) }
func conflict(err error) error { return Conflict(err) }

// untag drops the kind: for a message recorded, not returned.
func untag(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e.Err
	}
	return err
}
