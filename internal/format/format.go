// Package format prints a command's results as Docker's CLI does with
// --format: an aligned table (the default), JSON, or a Go template run on
// each object with Docker's template functions (json, join, split, upper,
// lower, title, pad, truncate, println). "table TEMPLATE" prints a table
// whose columns are the template's tab-separated cells, under a header.
package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"text/tabwriter"
	"text/template"
)

// Kind is what a --format value asks for.
type Kind int

const (
	Table    Kind = iota // the command's own table
	JSON                 // the objects as JSON
	Template             // a Go template per object, one per line
)

// ErrFormat is matched (errors.Is) by every bad --format value.
var ErrFormat = errors.New("bad --format")

// Format is a parsed --format value.
type Format struct {
	Kind  Kind
	table bool // "table TEMPLATE": aligned, with a header
	text  string
	tmpl  *template.Template
}

// Parse parses a --format value: "" or "table", "json", "table TEMPLATE"
// or a Go template.
func Parse(s string) (Format, error) {
	switch s {
	case "", "table":
		return Format{Kind: Table}, nil
	case "json":
		return Format{Kind: JSON}, nil
	}
	f := Format{Kind: Template, text: s}
	if rest, ok := strings.CutPrefix(s, "table "); ok {
		f.table, f.text = true, rest
	}
	if !strings.Contains(f.text, "{{") {
		return Format{}, fmt.Errorf("%w %q: use table, json or a Go template such as '{{.Name}}'", ErrFormat, s)
	}
	t, err := template.New("format").Funcs(funcs).Parse(unescape(f.text))
	if err != nil {
		return Format{}, fmt.Errorf("%w %q: %w", ErrFormat, s, err)
	}
	f.tmpl = t
	return f, nil
}

// unescape turns the two-character \t and \n an operator types in a
// shell into a tab and a newline, as Docker does.
func unescape(s string) string {
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(s)
}

// Write prints items with f, a Template one object per line. A Table
// format is the caller's to print (see Rows); JSON is an indented array,
// [] when there is nothing. headers names a template's fields in a
// "table TEMPLATE" header (e.g. "ID": "NETWORK ID"); others are upper-cased.
func Write[T any](w io.Writer, f Format, items []T, headers map[string]string) error {
	switch f.Kind {
	case JSON:
		if items == nil {
			items = []T{}
		}
		return PrintJSON(w, items)
	case Template:
		return f.execute(w, anys(items), headers, false)
	}
	return fmt.Errorf("format.Write: a table is printed by the command")
}

// Inspect prints items as Write does, for an inspect command: where a
// template fails on an item (a field named as its JSON names it, such as
// {{.Id}} for a field ID), it runs again on the item's JSON object, as
// docker inspect does; there a missing key is an error.
func Inspect[T any](w io.Writer, f Format, items []T, headers map[string]string) error {
	if f.Kind != Template {
		return Write(w, f, items, headers)
	}
	return f.execute(w, anys(items), headers, true)
}

func anys[T any](items []T) []any {
	all := make([]any, len(items))
	for i, it := range items {
		all[i] = it
	}
	return all
}

// execute runs the template on each item; with raw, one that fails on an
// item runs again on its JSON object (Inspect).
func (f Format) execute(w io.Writer, items []any, names map[string]string, raw bool) error {
	out := w
	var tw *tabwriter.Writer
	if f.table {
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		out = tw
		fmt.Fprintln(tw, header(f.text, names))
	}
	var b bytes.Buffer
	for _, it := range items {
		b.Reset()
		err := f.tmpl.Execute(&b, it)
		if err != nil && raw {
			b.Reset()
			err = f.executeRaw(&b, it)
		}
		if err != nil {
			return fmt.Errorf("--format %q: %w", f.text, err)
		}
		b.WriteByte('\n')
		if _, err := out.Write(b.Bytes()); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// executeRaw runs the template on the JSON object of it (numbers kept as
// written), where a missing key is an error.
func (f Format) executeRaw(w io.Writer, it any) error {
	data, err := json.Marshal(it)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj any
	if err := dec.Decode(&obj); err != nil {
		return err
	}
	t, err := f.tmpl.Clone()
	if err != nil {
		return err
	}
	return t.Option("missingkey=error").Execute(w, obj)
}

// PrintJSON writes v as indented JSON (as docker inspect does), without
// escaping <, > and &.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// PrintTable writes a header and rows aligned in columns.
func PrintTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fieldRE finds a field reference in a template (compiled when first
// needed: every CLI process pays for what it compiles at start).
var fieldRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\.([A-Za-z_][A-Za-z0-9_.]*)`) })

// header is the header of a "table TEMPLATE": per tab-separated cell, the
// name of the first field it shows.
func header(text string, names map[string]string) string {
	cells := strings.Split(unescape(text), "\t")
	for i, c := range cells {
		m := fieldRE().FindStringSubmatch(c)
		switch {
		case m == nil:
			cells[i] = ""
		case names[m[1]] != "":
			cells[i] = names[m[1]]
		default:
			cells[i] = strings.ToUpper(strings.ReplaceAll(m[1], ".", " "))
		}
	}
	return strings.Join(cells, "\t")
}
