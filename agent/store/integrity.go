package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ErrCorrupt is what every *CorruptError is: the state file cannot be
// trusted. Start-up refuses it; `mvlan agent --recover` rebuilds the state.
var ErrCorrupt = errors.New("state file is corrupt")

// Problem says what is wrong with a corrupt state file.
type Problem int

// The problems Open detects before it trusts a state file.
const (
	// Empty: the file exists but has no bytes (truncated to 0).
	Empty Problem = iota + 1
	// Truncated: the file is shorter than its own meta pages say.
	Truncated
	// BadMeta: a meta page fails its checksum or magic. bbolt alone
	// would silently fall back to the older transaction.
	BadMeta
	// Inconsistent: bbolt's consistency check (Tx.Check) failed.
	Inconsistent
	// Missing: there is no state file, but the snapshot or AgentIDFile
	// beside it shows that an agent kept its state there.
	Missing
	// BadSchema: the file's schema key is not a schema version, so its
	// records cannot be read.
	BadSchema
)

func (p Problem) String() string {
	switch p {
	case Empty:
		return "empty"
	case Truncated:
		return "truncated"
	case BadMeta:
		return "bad meta page"
	case Inconsistent:
		return "inconsistent"
	case Missing:
		return "missing"
	case BadSchema:
		return "bad schema key"
	}
	return fmt.Sprintf("Problem(%d)", int(p))
}

// CorruptError reports a state file that Open will not use.
type CorruptError struct {
	Path    string
	Problem Problem
	Detail  string
}

func (e *CorruptError) Error() string {
	if e.Problem == Missing {
		return fmt.Sprintf("state file %s is missing: %s", e.Path, e.Detail)
	}
	return fmt.Sprintf("state file %s is corrupt (%s): %s", e.Path, e.Problem, e.Detail)
}

// Is makes errors.Is(err, ErrCorrupt) true for every *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// The bbolt file format (go.etcd.io/bbolt/internal/common), as far as the
// checks below read it: a 16-byte page header, then on pages 0 and 1 the
// meta, whose checksum is FNV-64a over its bytes before the checksum.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaEnd        = pageHeaderSize + 64 // end of the meta incl. checksum
	noFreelist     = ^uint64(0)
	metaPageFlag   = 0x04
	freelistFlag   = 0x10
)

// meta is the part of a bbolt meta page the checks use.
type meta struct {
	pageID, pageSize, root, freelist, hwm, txid uint64
}

// parseMeta decodes a meta page, or says why it is not a valid one.
func parseMeta(b []byte) (meta, error) {
	if len(b) < metaEnd {
		return meta{}, errors.New("short page")
	}
	le := binary.LittleEndian
	if le.Uint32(b[16:]) != boltMagic {
		return meta{}, errors.New("bad magic")
	}
	if v := le.Uint32(b[20:]); v != boltVersion {
		return meta{}, fmt.Errorf("format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(b[pageHeaderSize : metaEnd-8])
	if h.Sum64() != le.Uint64(b[metaEnd-8:]) {
		return meta{}, errors.New("checksum mismatch")
	}
	if le.Uint16(b[8:]) != metaPageFlag {
		return meta{}, errors.New("not a meta page")
	}
	return meta{pageID: le.Uint64(b[0:]), pageSize: uint64(le.Uint32(b[24:])), root: le.Uint64(b[32:]),
		freelist: le.Uint64(b[48:]), hwm: le.Uint64(b[56:]), txid: le.Uint64(b[64:])}, nil
}

// inspect checks a bbolt file's meta pages, size, freelist page and
// b-tree with plain reads, before bbolt maps it: a file shorter than its
// meta says, or a page pointer into garbage, would otherwise fault (SIGBUS,
// SIGSEGV) inside bbolt. The caller holds the lock.
func inspect(f *os.File, path string) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := uint64(st.Size())
	bad := func(p Problem, format string, args ...any) error {
		return &CorruptError{Path: path, Problem: p, Detail: fmt.Sprintf(format, args...)}
	}
	if size == 0 {
		return bad(Empty, "0 bytes")
	}
	m0, err0 := readMeta(f, 0, 0)
	pageSize := m0.pageSize
	if err0 != nil {
		pageSize = uint64(os.Getpagesize())
	}
	if size < 2*pageSize {
		return bad(Truncated, "%d bytes, shorter than the two meta pages of %d bytes", size, pageSize)
	}
	m1, err1 := readMeta(f, pageSize, 1)
	switch {
	case err0 != nil && err1 != nil:
		return bad(BadMeta, "both meta pages are invalid (page 0: %v; page 1: %v)", err0, err1)
	case err0 != nil:
		return bad(BadMeta, "meta page 0 is invalid (%v); page 1 holds transaction %d", err0, m1.txid)
	case err1 != nil:
		return bad(BadMeta, "meta page 1 is invalid (%v); page 0 holds transaction %d", err1, m0.txid)
	}
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	if m0.pageSize != m1.pageSize {
		return bad(BadMeta, "meta pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	}
	if need := m.hwm * pageSize; size < need {
		return bad(Truncated, "%d bytes, but transaction %d uses %d pages of %d bytes (%d bytes)", size, m.txid, m.hwm, pageSize, need)
	}
	if m.root < 2 || m.root >= m.hwm {
		return bad(Inconsistent, "root page %d outside the file's %d pages", m.root, m.hwm)
	}
	if err := checkFreelist(f, m, func(d string) error { return bad(Inconsistent, "%s", d) }); err != nil {
		return err
	}
	if err := walkTree(f, m); err != nil {
		return bad(Inconsistent, "%v", err)
	}
	return nil
}

// readMeta reads and validates the meta page at offset off, which must be
// page id.
func readMeta(f *os.File, off, id uint64) (meta, error) {
	b := make([]byte, metaEnd)
	if _, err := f.ReadAt(b, int64(off)); err != nil {
		if errors.Is(err, io.EOF) {
			return meta{}, errors.New("beyond the end of the file")
		}
		return meta{}, err
	}
	m, err := parseMeta(b)
	if err == nil && m.pageID != id {
		err = fmt.Errorf("page id %d at page %d", m.pageID, id)
	}
	if err == nil && (m.pageSize < 1024 || m.pageSize&(m.pageSize-1) != 0) {
		err = fmt.Errorf("page size %d", m.pageSize)
	}
	return m, err
}

// checkFreelist checks that the freelist page m names lies inside the
// file's pages and that its entries fit in it: bbolt reads it on open.
func checkFreelist(f *os.File, m meta, bad func(string) error) error {
	if m.freelist == noFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.hwm {
		return bad(fmt.Sprintf("freelist page %d outside the file's %d pages", m.freelist, m.hwm))
	}
	b := make([]byte, pageHeaderSize+8)
	if _, err := f.ReadAt(b, int64(m.freelist*m.pageSize)); err != nil {
		return bad(fmt.Sprintf("read freelist page %d: %v", m.freelist, err))
	}
	le := binary.LittleEndian
	if flags := le.Uint16(b[8:]); flags != freelistFlag {
		return bad(fmt.Sprintf("page %d is not a freelist page (flags %#x)", m.freelist, flags))
	}
	overflow := uint64(le.Uint32(b[12:]))
	if m.freelist+overflow >= m.hwm {
		return bad(fmt.Sprintf("freelist pages %d-%d run past the file's %d pages", m.freelist, m.freelist+overflow, m.hwm))
	}
	count, first := uint64(le.Uint16(b[10:])), uint64(0)
	if count == 0xFFFF { // the real count is the first element
		count, first = le.Uint64(b[16:]), 1
	}
	if pageHeaderSize+8*(first+count) > (overflow+1)*m.pageSize {
		return bad(fmt.Sprintf("freelist page %d claims %d entries, more than its %d pages hold", m.freelist, count, overflow+1))
	}
	return nil
}

// check runs bbolt's consistency check over the whole file.
func check(db *bolt.DB, path string) error {
	return db.View(func(tx *bolt.Tx) error { return checkTx(tx, path) })
}

// checkTx runs bbolt's consistency check in tx; a *CorruptError names
// the first few problems.
func checkTx(tx *bolt.Tx, path string) error {
	var problems []string
	for err := range tx.Check() {
		if len(problems) < 5 {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return &CorruptError{Path: path, Problem: Inconsistent, Detail: strings.Join(problems, "; ")}
	}
	return nil
}
