package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Decode reads one JSON value from data into v, strictly: unknown fields,
// a key given twice in one object (encoding/json would keep the last one
// silently) and anything but white space after the value are errors that
// name what was wrong.
func Decode(data []byte, v any) error {
	if err := checkDuplicateKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the JSON value at byte %d; send one JSON object", dec.InputOffset())
	}
	return nil
}

// jsonFrame is one open object or array while checking for duplicate keys.
type jsonFrame struct {
	keys    map[string]string // folded key -> as given; nil for an array
	wantKey bool              // in an object, the next string is a key
}

// foldKey is k as encoding/json matches it to a field: whatever its case
// ("NAME" is "name"; so are the Kelvin sign and the long s as k and s).
func foldKey(k string) string { return strings.ToLower(strings.ToUpper(k)) }

// checkDuplicateKeys walks data's tokens and fails on an object that has
// a key twice. Syntax errors are left to the decoder.
func checkDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*jsonFrame
	for len(stack) > 0 || dec.InputOffset() == 0 {
		tok, err := dec.Token()
		if err != nil {
			return nil // empty or malformed: the decoder says which
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.wantKey {
			switch first, seen := top.keys[foldKey(s)]; {
			case seen && first == s:
				return fmt.Errorf("key %q is given twice in one object; give each key once", s)
			case seen:
				return fmt.Errorf("keys %q and %q are one key (keys match whatever their case); give it once", first, s)
			}
			top.keys[foldKey(s)], top.wantKey = s, false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &jsonFrame{keys: map[string]string{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &jsonFrame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].keys != nil {
			stack[len(stack)-1].wantKey = true // a member's value is complete
		}
	}
	return nil
}
