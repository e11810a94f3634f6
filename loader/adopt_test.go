package loader

import (
	"context"
	"strconv"
	"testing"
)

// TestAdoptEndpoint: after a restart (Load again on the same pins), an
// endpoint whose hooks run its netns's stubs is adopted in its mode and
// recorded, without changing the kernel; one asked under another netns's
// cookie, or missing its egress program, is not (AttachEndpoint then puts
// it back, and the next start adopts it).
func TestAdoptEndpoint(t *testing.T) {
	for _, mode := range []Mode{ModeTCX, ModeTC} {
		t.Run(string(mode), func(t *testing.T) { testAdoptEndpoint(t, mode) })
	}
}

func testAdoptEndpoint(t *testing.T, mode Mode) {
	requireMode(t, mode)
	l := newLab(t)
	pinDir := privateBPFFS(t)
	d, err := Load(context.Background(), pinDir, testPath)
	if err != nil {
		t.Fatal(err)
	}
	l.setup(t, d)
	l.attach(t, d, mode)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	cookies := map[string]uint64{}
	for _, c := range []container{l.c1, l.c2} {
		if cookies[c.path], err = NetnsCookie(c.path); err != nil {
			t.Fatal(err)
		}
	}
	adopt := func(d *Datapath, c container, cookie uint64) (Mode, bool) {
		return d.AdoptEndpoint(t.Context(), c.path, cookie, c.ifindex)
	}
	d = loadAt(t, pinDir)
	if got, ok := adopt(d, l.c1, cookies[l.c1.path]); !ok || got != mode {
		t.Fatalf("adopt c1 after restart: %q, %v; want %q, true", got, ok, mode)
	}
	expectAttachments(t, d, mode, 2)
	if _, ok := adopt(d, l.c2, cookies[l.c1.path]); ok {
		t.Errorf("c2 adopted under c1's netns cookie")
	}
	c2 := target{netns: l.c2.path, cookie: cookies[l.c2.path], ifindex: l.c2.ifindex}
	if mode == ModeTC {
		l.sb.Run(t, l.c2.path, "tc", "filter", "del", "dev", "eth0", "egress", "pref", strconv.Itoa(FilterPriority))
	} else if err := d.detachTCX(c2, Egress); err != nil { // unpin and close: detached now (a bare unlink detaches later)
		t.Fatal(err)
	}
	if got, ok := adopt(d, l.c2, cookies[l.c2.path]); ok {
		t.Errorf("c2 without its egress program adopted (%q)", got)
	}
	if err := d.AttachEndpoint(t.Context(), l.c2.path, l.c2.ifindex, mode); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = loadAt(t, pinDir)
	if got, ok := adopt(d, l.c2, cookies[l.c2.path]); !ok || got != mode {
		t.Errorf("adopt c2 after its programs were put back: %q, %v; want %q, true", got, ok, mode)
	}
}
