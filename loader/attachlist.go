package loader

import (
	"cmp"
	"slices"
	"strings"
)

// attachList is what a Datapath attached, by key (guarded by the
// Datapath's mu), and the sorted list Attachments hands out, kept until
// the next change: every scrape lists every attachment, two per endpoint,
// and they change only when one is attached, detached or renamed.
type attachList struct {
	m      map[attachKey]Attachment
	sorted []Attachment // nil: changed since the last sort
	ver    uint64       // changes so far
}

func (l *attachList) get(k attachKey) (Attachment, bool) {
	a, ok := l.m[k]
	return a, ok
}

func (l *attachList) set(k attachKey, a Attachment) {
	l.m[k] = a
	l.changed()
}

func (l *attachList) del(k attachKey) {
	if _, ok := l.m[k]; ok {
		delete(l.m, k)
		l.changed()
	}
}

func (l *attachList) changed() {
	l.sorted = nil
	l.ver++
}

// Attachments lists what this Datapath attached (since Load), sorted by
// netns cookie, ifindex and hook. The list is shared until the next
// change (a scrape lists thousands): the caller must not change it. It
// is sorted after the lock is released (attaches wait for the lock).
func (d *Datapath) Attachments() []Attachment {
	d.mu.Lock()
	l := &d.attached
	if l.sorted != nil || len(l.m) == 0 {
		defer d.mu.Unlock()
		return l.sorted
	}
	out, ver := make([]Attachment, 0, len(l.m)), l.ver
	for _, a := range l.m {
		out = append(out, a)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Attachment) int {
		return cmp.Or(cmp.Compare(a.NetnsCookie, b.NetnsCookie), cmp.Compare(a.Ifindex, b.Ifindex),
			strings.Compare(string(a.Hook), string(b.Hook)))
	})
	d.mu.Lock()
	if l.ver == ver {
		l.sorted = out
	}
	d.mu.Unlock()
	return out
}
