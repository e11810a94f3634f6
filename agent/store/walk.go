package store

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The page layout walk reads (go.etcd.io/bbolt/internal/common/page.go):
// after the page header come count 16-byte elements; a branch element is
// pos, ksize (uint32) and the child's page id (uint64); a leaf element is
// flags, pos, ksize, vsize (uint32), the key and value lying pos bytes
// after the element. A leaf value flagged as a bucket starts with the
// bucket's root page id and sequence; root 0 means an inline bucket whose
// leaf page follows in the value.
const (
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
	bucketLeafFlag = 0x01
	elementSize    = 16
	bucketHeader   = 16
)

// walker checks the b-tree of a bbolt file with plain reads, so that
// every page bbolt will follow (Tx.Check and the store's own reads) is
// inside the file, referenced once, of the right kind, and holds its
// elements: bbolt trusts those and faults or runs away on garbage.
type walker struct {
	r        io.ReaderAt
	pageSize uint64
	hwm      uint64
	seen     map[uint64]bool
}

// walkTree checks the tree of every bucket reachable from m's root.
func walkTree(r io.ReaderAt, m meta) error {
	w := &walker{r: r, pageSize: m.pageSize, hwm: m.hwm, seen: map[uint64]bool{}}
	return w.page(m.root, 0)
}

// page checks page id and, through it, its subtree.
func (w *walker) page(id uint64, depth int) error {
	if id < 2 || id >= w.hwm {
		return fmt.Errorf("page %d outside the file's %d pages", id, w.hwm)
	}
	if w.seen[id] {
		return fmt.Errorf("page %d referenced twice", id)
	}
	if depth > 64 {
		return fmt.Errorf("page %d: tree deeper than 64", id)
	}
	head := make([]byte, pageHeaderSize)
	if _, err := w.r.ReadAt(head, int64(id*w.pageSize)); err != nil {
		return fmt.Errorf("read page %d: %w", id, err)
	}
	le := binary.LittleEndian
	overflow := uint64(le.Uint32(head[12:]))
	if got := le.Uint64(head); got != id {
		return fmt.Errorf("page %d says it is page %d", id, got)
	}
	if id+overflow >= w.hwm {
		return fmt.Errorf("page %d runs %d pages past its start, beyond the file's %d pages", id, overflow, w.hwm)
	}
	for i := id; i <= id+overflow; i++ {
		w.seen[i] = true
	}
	p := make([]byte, (overflow+1)*w.pageSize)
	if _, err := w.r.ReadAt(p, int64(id*w.pageSize)); err != nil {
		return fmt.Errorf("read page %d: %w", id, err)
	}
	return w.node(p, fmt.Sprintf("page %d", id), depth)
}

// node checks a branch or leaf page's elements (p is the whole page, or
// an inline bucket's page) and follows its children.
func (w *walker) node(p []byte, where string, depth int) error {
	le := binary.LittleEndian
	if len(p) < pageHeaderSize {
		return fmt.Errorf("%s: %d bytes, shorter than a page header", where, len(p))
	}
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if flags != branchPageFlag && flags != leafPageFlag {
		return fmt.Errorf("%s: flags %#x, want a branch or leaf page", where, flags)
	}
	if pageHeaderSize+count*elementSize > len(p) {
		return fmt.Errorf("%s: %d elements do not fit in %d bytes", where, count, len(p))
	}
	for i := range count {
		off := pageHeaderSize + i*elementSize
		e := p[off : off+elementSize]
		pos, ksize := uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:]))
		if flags == branchPageFlag {
			pos, ksize = uint64(le.Uint32(e[0:])), uint64(le.Uint32(e[4:]))
		}
		vsize := uint64(0)
		if flags == leafPageFlag {
			vsize = uint64(le.Uint32(e[12:]))
		}
		start := uint64(off) + pos
		if start+ksize+vsize > uint64(len(p)) {
			return fmt.Errorf("%s: element %d runs past the page", where, i)
		}
		if flags == branchPageFlag {
			if err := w.page(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		if le.Uint32(e[0:])&bucketLeafFlag != 0 {
			if err := w.bucket(p[start+ksize:start+ksize+vsize], where, depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// bucket checks a bucket value: its root page's tree, or its inline page.
func (w *walker) bucket(v []byte, where string, depth int) error {
	if len(v) < bucketHeader {
		return fmt.Errorf("%s: bucket value of %d bytes", where, len(v))
	}
	if root := binary.LittleEndian.Uint64(v); root != 0 {
		return w.page(root, depth+1)
	}
	return w.node(v[bucketHeader:], where+" (inline bucket)", depth+1)
}
