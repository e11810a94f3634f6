package loader

import (
	"fmt"
	"os"
	"path/filepath"
)

// A clsact qdisc this Datapath created is recorded twice: in d.qdiscs and
// as a directory pinDir/qdiscs/<cookie>_<ifindex> on the bpffs, so that
// after an agent restart the qdisc is still known as ours and removed with
// our last filter, while one that was there before us is never touched.

func (d *Datapath) qdiscMark(k ifaceKey) string {
	return filepath.Join(d.pinDir, "qdiscs", fmt.Sprintf("%d_%d", k.cookie, k.ifindex))
}

// markQdisc records that we created the clsact qdisc of k. Caller holds mu.
func (d *Datapath) markQdisc(k ifaceKey) error {
	d.qdiscs[k] = true
	if err := os.MkdirAll(d.qdiscMark(k), 0o700); err != nil {
		return fmt.Errorf("record clsact qdisc: %w", err)
	}
	return nil
}

// unmarkQdisc forgets k's qdisc. Caller holds mu.
func (d *Datapath) unmarkQdisc(k ifaceKey) {
	delete(d.qdiscs, k)
	_ = os.Remove(d.qdiscMark(k))
}

// loadQdiscMarks reads the records a previous agent left.
func (d *Datapath) loadQdiscMarks() error {
	entries, err := os.ReadDir(filepath.Join(d.pinDir, "qdiscs"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read clsact records: %w", err)
	}
	for _, e := range entries {
		var k ifaceKey
		if _, err := fmt.Sscanf(e.Name(), "%d_%d", &k.cookie, &k.ifindex); err == nil {
			d.qdiscs[k] = true
		}
	}
	return nil
}
