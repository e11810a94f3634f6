package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       string // substring of the error; "" means accepted
	}{
		{"plain", `{"name":"n1","subnets":["10.0.0.0/24"]}`, ""},
		{"white space after", "{\"name\":\"n1\"}\n\t ", ""},
		{"same key in two objects", `{"name":"n1","labels":["a=b"],"options":["parent=eth0"]}`, ""},
		{"trailing garbage", `{"name":"n1"}garbage`, "trailing data"},
		{"two objects", `{"name":"n1"}{"name":"n2"}`, "trailing data"},
		{"duplicate key", `{"name":"n1","subnets":[],"name":"n2"}`, `key "name" is given twice`},
		{"duplicate after nested object", `{"name":"n1","ipam_options":[],"internal":true,"internal":false}`, `key "internal" is given twice`},
		{"the same key in another case", `{"name":"n1","NAME":"n2"}`, `keys "name" and "NAME" are one key`},
		{"the same key with a long s", "{\"subnets\":[],\"\u017fubnets\":[\"10.0.0.0/24\"]}", `are one key`},
		{"unknown field", `{"name":"n1","nmae":"x"}`, `unknown field "nmae"`},
		{"empty", ``, "EOF"},
		{"malformed", `{"name":`, "unexpected EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var req NetworkCreate
			err := Decode([]byte(tt.body), &req)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Decode(%q): %v; want it accepted", tt.body, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Decode(%q): %v; want an error with %q", tt.body, err, tt.want)
			}
		})
	}
}

func TestDuplicateKeysNested(t *testing.T) {
	for body, dup := range map[string]bool{
		`{"a":{"b":1,"b":2}}`:           true,
		`{"a":[{"b":1},{"b":2}]}`:       false,
		`{"a":{"b":1},"c":{"b":2}}`:     false,
		`[{"x":"x","x":"y"}]`:           true,
		`{"a":[1,"a",{"a":1}],"b":"a"}`: false,
		`{"a":"b","b":"a","a":"c"}`:     true,
		`{"ab":1,"aB":2}`:               true,
	} {
		if got := checkDuplicateKeys([]byte(body)) != nil; got != dup {
			t.Errorf("checkDuplicateKeys(%s) found a duplicate: %v, want %v", body, got, dup)
		}
	}
}

// FuzzDecode: whatever Decode accepts is one valid JSON value, and every
// key in it survived decoding (no key was dropped as a duplicate); what it
// rejects as a duplicate really has fewer distinct keys than key tokens.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `{"a":{"b":[1,{"c":2,"c":3}]}}`, `{"a":1} x`, `[1,2]`, `"s"`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		err := Decode(data, &v)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if keys, entries := keyTokens(data), mapEntries(v); keys != entries {
			t.Fatalf("accepted %q: %d keys in the text, %d after decoding", data, keys, entries)
		}
	})
}

// keyTokens counts the object keys in valid JSON: strings followed by ':'.
func keyTokens(data []byte) int {
	n := 0
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return n
		}
		if _, ok := tok.(string); ok {
			rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")
			if len(rest) > 0 && rest[0] == ':' {
				n++
			}
		}
	}
}

func mapEntries(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := len(x)
		for _, e := range x {
			n += mapEntries(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += mapEntries(e)
		}
		return n
	}
	return 0
}
