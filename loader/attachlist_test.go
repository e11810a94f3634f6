package loader

import (
	"slices"
	"testing"
)

// TestAttachmentsKept: Attachments hands out one sorted list until a
// change, then a new one with the change.
func TestAttachmentsKept(t *testing.T) {
	d := &Datapath{attached: attachList{m: map[attachKey]Attachment{}}}
	if got := d.Attachments(); len(got) != 0 {
		t.Fatalf("attachments of none: %+v", got)
	}
	add := func(cookie uint64, ifindex int, hook Hook) {
		d.attached.set(attachKey{cookie, ifindex, hook}, Attachment{NetnsCookie: cookie, Ifindex: ifindex, Hook: hook, Program: "ep_" + string(hook)})
	}
	add(7, 2, Ingress)
	add(3, 9, Egress)
	add(3, 9, Ingress)
	keys := func(as []Attachment) []attachKey {
		var out []attachKey
		for _, a := range as {
			out = append(out, attachKey{a.NetnsCookie, a.Ifindex, a.Hook})
		}
		return out
	}
	first := d.Attachments()
	want := []attachKey{{3, 9, Egress}, {3, 9, Ingress}, {7, 2, Ingress}}
	if got := keys(first); !slices.Equal(got, want) {
		t.Fatalf("attachments %v, want %v (sorted)", got, want)
	}
	if again := d.Attachments(); &again[0] != &first[0] {
		t.Fatal("unchanged attachments sorted again (a new list)")
	}
	d.attached.del(attachKey{3, 9, Egress})
	if got, want := keys(d.Attachments()), []attachKey{{3, 9, Ingress}, {7, 2, Ingress}}; !slices.Equal(got, want) {
		t.Fatalf("after a detach: %v, want %v", got, want)
	}
	d.attached.del(attachKey{1, 1, Egress}) // not there: nothing changes
	add(1, 1, Egress)
	if got, want := keys(d.Attachments()), []attachKey{{1, 1, Egress}, {3, 9, Ingress}, {7, 2, Ingress}}; !slices.Equal(got, want) {
		t.Fatalf("after an attach: %v, want %v", got, want)
	}
}
