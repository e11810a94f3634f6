package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"unicode"
)

// funcs are Docker's template functions (docker/cli templates package),
// with the same names and arguments.
var funcs = template.FuncMap{
	"json":     toJSON,
	"split":    strings.Split,
	"join":     strings.Join,
	"title":    title,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      pad,
	"truncate": truncate,
	"println":  fmt.Sprintln,
}

// toJSON is v as compact JSON without a trailing newline.
func toJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// title upper-cases the first letter of each word.
func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		up := unicode.IsSpace(prev)
		prev = r
		if up {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

// pad surrounds s with prefix spaces before and suffix spaces after.
func pad(s string, prefix, suffix int) string {
	return strings.Repeat(" ", max(prefix, 0)) + s + strings.Repeat(" ", max(suffix, 0))
}

// truncate keeps the first n runes of s.
func truncate(s string, n int) string {
	r := []rune(s)
	if n < 0 || len(r) <= n {
		return s
	}
	return string(r[:n])
}
