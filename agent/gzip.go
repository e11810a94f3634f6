package agent

import (
	"bytes"
	"compress/gzip"
	"sync"
)

// gzipPool holds writers at BestSpeed: a scrape of 4094 VLANs is ~1 MB of
// text, which the default level takes several times longer to compress
// for little gain. (Deflating it in segments on both cores at once was
// tried: it took more CPU per scrape and was no faster on a busy host,
// and a scrape that takes both cores slows the attaches running beside it.)
var gzipPool = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return gz
}}

// gzipTo appends b, gzipped, to out.
func gzipTo(out *bytes.Buffer, b []byte) {
	gz := gzipPool.Get().(*gzip.Writer)
	defer gzipPool.Put(gz)
	gz.Reset(out)
	gz.Write(b) // a bytes.Buffer does not fail
	gz.Close()
}
