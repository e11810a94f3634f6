package agent

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"runtime"
	"sync"
)

// A scrape of a trunk with 4094 VLANs is ~1 MB of text, whose compression
// was a quarter of the scrape. gzipped deflates it in segments on every
// core at once and returns them as one gzip member (RFC 1952): each
// segment but the last ends with a sync flush (an empty stored block, on
// a byte boundary, not final), so their concatenation is one deflate
// stream, the way a streaming compressor's output is. A segment does not
// refer back into the one before it, which costs a few bytes of output.

// minSegment is the least text worth a segment of its own.
const minSegment = 128 << 10

// flatePool holds deflaters at BestSpeed: the default level takes several
// times longer on this text for little gain.
var flatePool = sync.Pool{New: func() any {
	fw, _ := flate.NewWriter(nil, flate.BestSpeed)
	return fw
}}

// gzipHeader is what compress/gzip writes at BestSpeed without a name,
// comment or time: magic, deflate, no flags, mtime 0, XFL 4 (fastest),
// OS unknown.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255}

// segments is how many parts b is deflated in.
func segments(n int) int {
	return max(1, min(runtime.GOMAXPROCS(0), n/minSegment))
}

// gzipped returns b as one gzip member, in parts to write in order.
func gzipped(b []byte) [][]byte { return gzipSegments(b, segments(len(b))) }

// gzipSegments deflates b in n segments at once.
func gzipSegments(b []byte, n int) [][]byte {
	out := make([]bytes.Buffer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { deflateSegment(&out[i], b[i*len(b)/n:(i+1)*len(b)/n], i == n-1) })
	}
	crc := crc32.ChecksumIEEE(b)
	wg.Wait()
	parts := [][]byte{gzipHeader}
	for i := range out {
		parts = append(parts, out[i].Bytes())
	}
	trailer := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, crc), uint32(len(b)))
	return append(parts, trailer)
}

// deflateSegment deflates b into out, with the final block when last,
// else with a sync flush.
func deflateSegment(out *bytes.Buffer, b []byte, last bool) {
	fw := flatePool.Get().(*flate.Writer)
	defer flatePool.Put(fw)
	fw.Reset(out)
	fw.Write(b) // a bytes.Buffer does not fail
	if last {
		fw.Close()
	} else {
		fw.Flush()
	}
}
