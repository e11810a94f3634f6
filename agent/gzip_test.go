package agent

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os/exec"
	"testing"
)

// TestGzipSegments: text deflated in segments at once is one gzip member
// that Go's reader and the gzip program both read back as the text.
func TestGzipSegments(t *testing.T) {
	text := testText(3 * minSegment)
	tests := []struct {
		name     string
		b        []byte
		segments int
	}{
		{"empty", nil, 1},
		{"one line", []byte("mvlan_build_info 1\n"), 1},
		{"one line, two segments", []byte("mvlan_build_info 1\n"), 2},
		{"scrape, one segment", text, 1},
		{"scrape, two segments", text, 2},
		{"scrape, seven segments", text, 7},
	}
	gzipProgram, _ := exec.LookPath("gzip")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := bytes.Join(gzipSegments(tt.b, tt.segments), nil)
			r, err := gzip.NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatal(err)
			}
			r.Multistream(false)
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if !bytes.Equal(got, tt.b) {
				t.Fatalf("read back %d bytes, want the %d written", len(got), len(tt.b))
			}
			if err := r.Reset(bytes.NewReader(nil)); err != io.EOF {
				t.Errorf("more than one gzip member")
			}
			if gzipProgram == "" {
				return
			}
			cmd := exec.Command(gzipProgram, "-dc")
			cmd.Stdin = bytes.NewReader(z)
			if out, err := cmd.Output(); err != nil || !bytes.Equal(out, tt.b) {
				t.Errorf("gzip -dc: %v, %d bytes, want the %d written", err, len(out), len(tt.b))
			}
		})
	}
}

// testText is n bytes or more of sample lines.
func testText(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "mvlan_vlan_rx_packets_total{parent=\"eth0\",vlan=\"%d\"} %d\n", i%4096, i*7919)
	}
	return b.Bytes()
}
