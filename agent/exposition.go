package agent

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// The datapath's counters are tens of thousands of series (4 per VLAN of
// each parent alone). Building a client_golang metric for each on every
// scrape, then sorting and encoding them, cost most of a scrape; instead
// each series' "name{labels} " is built once, kept while the series is
// seen, and a scrape appends values to it in the text exposition format
// (version 0.0.4).

// labelValues are the values of a series' labels, in the family's order.
type labelValues [4]string

// series is the cached start of a sample line and the scrape that last
// wrote it.
type series struct {
	vals   labelValues
	prefix []byte
	gen    uint64
}

// family is one metric family written in the text format.
type family struct {
	name, help, typ string
	labels          []string

	series map[labelValues]*series
	// order is the series by the position they were added at: a scrape
	// that adds the series of the last one in the same order (the usual
	// case) finds each by comparing its labels, without hashing them.
	order []*series
	buf   []byte // this scrape's sample lines
	gen   uint64
	n     int // samples this scrape
}

func newFamily(typ, name, help string, labels ...string) *family {
	if len(labels) > len(labelValues{}) {
		panic("metric " + name + " has more labels than labelValues holds")
	}
	return &family{name: name, help: help, typ: typ, labels: labels, series: map[labelValues]*series{}}
}

// start begins a scrape.
func (f *family) start(gen uint64) {
	f.buf, f.gen, f.n = f.buf[:0], gen, 0
}

// add appends one sample.
func (f *family) add(v uint64, vals labelValues) {
	s := f.lookup(vals)
	s.gen = f.gen
	f.addPrefixed(s.prefix, v)
}

// lookup finds or makes the series of vals, the family's sample number
// f.n of this scrape.
func (f *family) lookup(vals labelValues) *series {
	i := f.n
	if i < len(f.order) && f.order[i].vals == vals {
		return f.order[i]
	}
	s := f.series[vals]
	if s == nil {
		s = &series{vals: vals, prefix: f.prefix(vals)}
		f.series[vals] = s
	}
	if i < len(f.order) {
		f.order[i] = s
	} else {
		f.order = append(f.order, s)
	}
	return s
}

// addPrefixed appends one sample whose prefix the caller cached.
func (f *family) addPrefixed(prefix []byte, v uint64) {
	f.buf = append(f.buf, prefix...)
	f.buf = strconv.AppendUint(f.buf, v, 10)
	f.buf = append(f.buf, '\n')
	f.n++
}

// prefix is `name{l1="v1",...} ` with the values escaped.
func (f *family) prefix(vals labelValues) []byte {
	b := append([]byte(nil), f.name...)
	if len(f.labels) > 0 {
		b = append(b, '{')
		for i, l := range f.labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, l...)
			b = append(b, '=', '"')
			// A host link's name may be any bytes; a value that is not
			// UTF-8 would make Prometheus refuse the whole scrape.
			b = append(b, labelEscaper.Replace(strings.ToValidUTF8(vals[i], "\uFFFD"))...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, ' ')
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// textWriter is where the text goes: a bytes.Buffer, a bufio.Writer.
type textWriter interface {
	io.Writer
	io.StringWriter
}

// writeTo writes the family (nothing if it has no sample this scrape),
// then forgets series that were not seen when they are most of the cache.
func (f *family) writeTo(w textWriter) {
	if f.n > 0 {
		w.WriteString("# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n# TYPE " + f.name + " " + f.typ + "\n")
		w.Write(f.buf)
	}
	if len(f.series) > 2*f.n+64 {
		for k, s := range f.series {
			if s.gen != f.gen {
				delete(f.series, k)
			}
		}
		clear(f.order[f.n:])
		f.order = f.order[:f.n]
	}
}

// scrapeHandler serves /metrics: the registry's families (the agent's
// own, Go and process metrics) encoded by expfmt, then the datapath's
// written from cached series; gzip when the client asks for it.
type scrapeHandler struct {
	a    *Agent
	reg  *prometheus.Registry
	dp   *datapathText
	bufs scrapeBufferSet
}

// ServeHTTP writes a scrape at low priority (atLowPriority): attaches
// that need the CPU meanwhile go first.
func (h *scrapeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	atLowPriority(func() { h.serve(w, r) })
}

func (h *scrapeHandler) serve(w http.ResponseWriter, r *http.Request) {
	bufs := h.bufs.get()
	defer h.bufs.put(bufs)
	s, statErr := h.a.eng.StatsWith(&bufs.stats) // before any lock of ours
	mfs, err := h.reg.Gather()
	if err != nil {
		h.a.log.Warn("metrics: some agent metrics not exported", "err", err)
	}
	text, zipped := &bufs.text, &bufs.zipped
	text.Reset()
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(text, mf) // a bytes.Buffer does not fail
	}
	h.dp.write(text, s, statErr, h.a.log)
	body := text
	if acceptsGzip(r) {
		w.Header().Set("Content-Encoding", "gzip")
		bufs.gzip(text.Bytes())
		body = zipped
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	w.Header().Set("Content-Length", strconv.Itoa(body.Len()))
	w.Write(body.Bytes()) // an error is a client that went away
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
