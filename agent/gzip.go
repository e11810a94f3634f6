package agent

import (
	"bytes"

	"github.com/klauspost/compress/gzip"

	"github.com/mvlan/mvlan/engine"
)

// scrapeBuffers are what a scrape reads the datapath into, its text (~1
// MB with a 4094-VLAN trunk), the gzipped form and the writer that makes
// it (~0.3 MB of tables), kept as a set so that the text's buffer is
// never the small one.
//
// klauspost/compress, not compress/gzip: at BestSpeed it compresses a
// 4094-VLAN scrape in about half the time, to within 4% of the size.
// BestSpeed, not the default level: that takes several times longer for
// little gain. (Deflating in segments on both cores at once was tried:
// more CPU per scrape, no faster on a busy host, and a scrape that takes
// both cores slows the attaches running beside it.)
type scrapeBuffers struct {
	stats        engine.StatsBuffers
	text, zipped bytes.Buffer
	gz           *gzip.Writer
}

// gzip sets zipped to b, gzipped.
func (s *scrapeBuffers) gzip(b []byte) {
	s.zipped.Reset()
	if s.gz == nil {
		s.gz, _ = gzip.NewWriterLevel(&s.zipped, gzip.BestSpeed) // a valid level
	} else {
		s.gz.Reset(&s.zipped)
	}
	s.gz.Write(b) // a bytes.Buffer does not fail
	s.gz.Close()
}

// scrapeBufferSet keeps one set of buffers between scrapes (a sync.Pool
// would drop it at every GC, and a scrape would grow 1 MB again); a
// scrape that finds it taken, by a scrape running at the same time,
// makes its own.
type scrapeBufferSet struct{ idle chan *scrapeBuffers }

func newScrapeBufferSet() scrapeBufferSet {
	return scrapeBufferSet{idle: make(chan *scrapeBuffers, 1)}
}

func (s scrapeBufferSet) get() *scrapeBuffers {
	select {
	case b := <-s.idle:
		return b
	default:
		return new(scrapeBuffers)
	}
}

func (s scrapeBufferSet) put(b *scrapeBuffers) {
	select {
	case s.idle <- b:
	default:
	}
}
