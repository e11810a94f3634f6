package store

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// FuzzOpen damages the release fixture (patch written at off, the file cut
// to cut bytes when cut is not 0), checks it as Open does and reads every
// record as Open would: it must refuse the file or read it, never panic or
// fault inside bbolt. (Verify and a read-only read, not Open: Open's
// fsyncs would allow a few runs a second.)
func FuzzOpen(f *testing.F) {
	if raceEnabled {
		f.Skip("runs without the race detector")
	}
	fixture, err := os.ReadFile(releaseFixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte{}, uint32(0))
	f.Add(uint32(4096+64), []byte{0xff}, uint32(0))
	f.Add(uint32(2*4096), []byte("\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\xff\xff"), uint32(0))
	f.Add(uint32(5*4096+16), []byte{0x10, 0x20, 0x30, 0x40}, uint32(0))
	f.Add(uint32(0), []byte{}, uint32(7*4096))
	f.Fuzz(func(t *testing.T, off uint32, patch []byte, cut uint32) {
		data := append([]byte(nil), fixture...)
		if cut != 0 {
			data = data[:int(cut)%len(data)]
		}
		if len(data) > 0 {
			at := int(off) % len(data)
			copy(data[at:], patch)
		}
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if Verify(path) != nil {
			return
		}
		db, err := openBolt(path, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("open after Verify passed: %v", err)
		}
		defer db.Close()
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					_, _ = decodeEndpoint(k, v)
					return nil
				})
			})
		})
	})
}
