package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// linksOnly is a Namespaces whose every namespace has links.
type linksOnly struct {
	Namespaces
	links []link.Info
}

func (l linksOnly) Links(string) ([]link.Info, error)         { return l.links, nil }
func (l linksOnly) Macvlans(string, int) ([]link.Info, error) { return l.links, nil }

// nsLinksOf is a Namespaces whose namespaces have the links of, by path.
type nsLinksOf struct {
	Namespaces
	of map[string][]link.Info
}

func (l nsLinksOf) Links(p string) ([]link.Info, error)           { return l.of[p], nil }
func (l nsLinksOf) Macvlans(p string, _ int) ([]link.Info, error) { return l.of[p], nil }

// TestEndpointLinks: the endpoint's own link is the macvlan on a lower
// link elsewhere at its ifindex, and every other macvlan or macvtap on its
// parent is nested, whatever its alias and whatever holds the endpoint's
// index; links on another parent, of another kind, or on a lower link of
// the container's own namespace are not.
func TestEndpointLinks(t *testing.T) {
	own := link.Info{Name: "eth0", Kind: "macvlan", Index: 2, ParentIndex: 7, LowerElsewhere: true, LowerOnHost: true, Alias: "mvlan/n/ep/1"}
	evil := link.Info{Name: "evil", Kind: "macvlan", Index: 3, ParentIndex: 7, LowerElsewhere: true, LowerOnHost: true}
	for _, tc := range []struct {
		what     string
		links    []link.Info
		nested   []string
		stranger string
	}{
		{"alone", []link.Info{own}, nil, ""},
		{"nested macvlan", []link.Info{own, evil}, []string{"evil"}, ""},
		{"nested with mvlan's alias", []link.Info{own, {Name: "evil", Kind: "macvlan", Index: 3, ParentIndex: 7, LowerElsewhere: true, LowerOnHost: true, Alias: "mvlan/x/ep/y"}}, []string{"evil"}, ""},
		{"nested macvtap", []link.Info{own, {Name: "tap", Kind: "macvtap", Index: 4, ParentIndex: 7, LowerElsewhere: true, LowerOnHost: true}}, []string{"tap"}, ""},
		{"another parent", []link.Info{own, {Name: "other", Kind: "macvlan", Index: 3, ParentIndex: 8, LowerElsewhere: true, LowerOnHost: true}}, nil, ""},
		{"a veth", []link.Info{own, {Name: "v", Kind: "veth", Index: 3, ParentIndex: 7}}, nil, ""},
		// A macvlan on the container's own link that has the parent's
		// index number there is not on the parent.
		{"on a link of its own", []link.Info{own, {Name: "v", Kind: "veth", Index: 7}, {Name: "m", Kind: "macvlan", Index: 3, ParentIndex: 7}}, nil, ""},
		// ... nor one on a link of a namespace it made, at that index there.
		{"on a link of a namespace of its own", []link.Info{own, {Name: "m", Kind: "macvlan", Index: 3, ParentIndex: 7, LowerElsewhere: true}}, nil, ""},
		// Its eth0 deleted, and such a link at its index: a stranger.
		{"own link replaced by one on a namespace of its own", []link.Info{{Name: "eth0", Kind: "macvlan", Index: 2, ParentIndex: 7, LowerElsewhere: true}}, nil, "eth0"},
		// The container deleted its eth0 and kept the one it made: the
		// network's parent (7) tells.
		{"own link gone", []link.Info{evil}, []string{"evil"}, ""},
		{"own link gone, another parent", []link.Info{{Name: "other", Kind: "macvlan", Index: 3, ParentIndex: 8, LowerElsewhere: true, LowerOnHost: true}}, nil, ""},
		// ... and put a veth at its index, whose peer's index would have
		// stood in for the parent's.
		{"a veth at its index", []link.Info{{Name: "eth0", Kind: "veth", Index: 2, ParentIndex: 77}, evil, {Name: "vp", Kind: "veth", Index: 77, ParentIndex: 2}}, []string{"evil"}, "eth0"},
	} {
		a := &Engine{ns: linksOnly{links: tc.links}}
		got := a.endpointLinks(endpoint{Netns: "/run/netns/c", Ifindex: own.Index}, 7)
		wantOwn := tc.stranger == "" && slices.ContainsFunc(tc.links, func(l link.Info) bool { return l.Index == own.Index })
		if (got.own != nil) != wantOwn {
			t.Errorf("%s: own link %v, want found=%v", tc.what, got.own, wantOwn)
		}
		stranger := ""
		if got.stranger != nil {
			stranger = got.stranger.Name
		}
		if stranger != tc.stranger {
			t.Errorf("%s: stranger at the endpoint's index %v, want %q", tc.what, got.stranger, tc.stranger)
		}
		var names []string
		for _, l := range got.nested {
			names = append(names, l.Name)
		}
		if !slices.Equal(names, tc.nested) {
			t.Errorf("%s: nested %v, want %v", tc.what, names, tc.nested)
		}
	}
}

// tamperedDatapath has a program ahead of mvlan's on ingress while
// tampered; a repair takes it away.
type tamperedDatapath struct {
	Datapath
	tampered bool
	fail     bool // repairs fail
	redo     bool // the container does the tamper again right after each repair
	blind    bool // inspections fail
	repairs  int  // repairs that held
	tries    int  // repairs tried
}

func (d *tamperedDatapath) InspectEndpoint(context.Context, string, int) ([]loader.Finding, error) {
	if d.blind {
		return nil, errors.New("cannot look")
	}
	if !d.tampered {
		return nil, nil
	}
	return []loader.Finding{{Hook: loader.Ingress, Tamper: loader.TamperForeignFirst}}, nil
}

func (d *tamperedDatapath) RepairEndpoint(context.Context, string, int, []loader.Finding) error {
	d.tries++
	if d.fail {
		return errors.New("cannot")
	}
	d.tampered = d.redo
	d.repairs++
	return nil
}

// tamperEngine is an Engine with network n1 whose endpoints are eps
// (ready), over d; each endpoint's namespace has its link.
func tamperEngine(d Datapath, eps ...endpoint) *Engine {
	net := &network{ID: "n1", eps: map[string]*entry{}}
	net.cur.Store(&netName{name: "n1"})
	for _, e := range eps {
		net.eps[e.ID] = &entry{ep: e}
	}
	own := nsLinksOf{of: map[string][]link.Info{}}
	for _, e := range eps {
		own.of[e.Netns] = append(own.of[e.Netns], link.Info{Name: e.IfName, Kind: "macvlan", Index: e.Ifindex, ParentIndex: 7, LowerElsewhere: true, LowerOnHost: true})
	}
	return &Engine{dp: d, ns: own, log: slog.New(slog.NewTextHandler(io.Discard, nil)), nets: map[string]*network{"n1": net}}
}

// TestTamperAgainAfterRepair: a tamper done again after a repair that
// held is repaired again, also when the endpoint was not looked at in
// between (a TCX repair sends no notification, so the next look may be
// the one that finds the second tamper).
func TestTamperAgainAfterRepair(t *testing.T) {
	d := &tamperedDatapath{}
	e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	a := tamperEngine(d, e)
	for i := 1; i <= 2; i++ {
		d.tampered = true
		a.inspectEndpoint(context.Background(), e)
		if d.tampered || d.repairs != i {
			t.Fatalf("tamper %d: repairs %d, still tampered %v; want %d repairs, none left", i, d.repairs, d.tampered, i)
		}
	}
	if tampered, repaired := a.tamper.snapshot(); tampered[string(loader.TamperForeignFirst)] != 2 || repaired[string(loader.TamperForeignFirst)] != 2 {
		t.Fatalf("counts tampered %v repaired %v, want foreign_first 2 and 2", tampered, repaired)
	}
}

// parentHost is a Host whose links are those given, by name.
type parentHost struct {
	Host
	links map[string]link.Info
}

func (h parentHost) Link(name string) (link.Info, error) {
	if l, ok := h.links[name]; ok {
		return l, nil
	}
	return link.Info{}, link.ErrNotFound
}

// TestTamperLinkGone: hooks that read as detached on a link that is gone
// by the time the namespace's links are listed, when its parent went (the
// kernel takes the containers' macvlans with it; a gone device's tc dump
// is empty) or is another link now, are no tamper: nothing is repaired,
// counted or reported. With the parent still there, the container moved
// or deleted its link: that is one.
func TestTamperLinkGone(t *testing.T) {
	for _, tc := range []struct {
		what   string
		parent map[string]link.Info
		tamper bool
	}{
		{"parent gone", nil, false},
		{"parent made again", map[string]link.Info{"eth0": {Name: "eth0", Index: 9}}, false},
		{"parent there", map[string]link.Info{"eth0": {Name: "eth0", Index: 7}}, true},
	} {
		d := &tamperedDatapath{tampered: true}
		e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
		a := tamperEngine(d, e)
		a.ns = linksOnly{}
		a.host = parentHost{links: tc.parent}
		a.nets["n1"].Parent, a.nets["n1"].selfIndex = "eth0", 7
		a.inspectEndpoint(context.Background(), e)
		tampered, _ := a.tamper.snapshot()
		if got := tampered[string(loader.TamperForeignFirst)] == 1 && len(a.tamper.findings()) == 1; got != tc.tamper {
			t.Errorf("%s: tampers counted %v, doctor's findings %v; want a tamper: %v", tc.what, tampered, a.tamper.findings(), tc.tamper)
		}
	}
}

// TestTamperRepairRetried: a tamper whose repair failed is repaired again,
// not only once it clears: after retryFirst, then at doubling intervals
// up to retryMax; until then each check only looks (and asks the guard to
// look again). It counts once, as one tamper.
func TestTamperRepairRetried(t *testing.T) {
	d := &tamperedDatapath{tampered: true, fail: true}
	e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	a := tamperEngine(d, e)
	now := time.Unix(1000, 0)
	a.tamper.clock = func() time.Time { return now }
	look := func(tries int) {
		t.Helper()
		if a.inspectEndpoint(context.Background(), e) {
			t.Fatalf("try %d: the repair failed, and the check does not ask to look again", tries)
		}
		if d.tries != tries {
			t.Fatalf("%d repairs tried, want %d", d.tries, tries)
		}
	}
	look(1)
	// A look that fails in between (the hooks unknown) neither clears the
	// tamper (counted again when next seen) nor starts its retries over.
	d.blind = true
	a.inspectEndpoint(context.Background(), e)
	d.blind = false
	for k := 1; k <= 8; k++ { // the wait after the k-th failure: 0.5 s, 1 s, 2 s, ... 30 s
		wait := min(retryFirst<<(k-1), retryMax)
		now = now.Add(wait - time.Millisecond)
		look(k)
		now = now.Add(time.Millisecond)
		look(k + 1)
	}
	// The next try 30 s away: the check no longer asks to look each time.
	now = now.Add(retrySoon + time.Second)
	if !a.inspectEndpoint(context.Background(), e) || d.tries != 9 {
		t.Fatalf("with the next try %v away: the check asks to look again, or tried (%d tries); want neither, 9 tries", retryMax-retrySoon-time.Second, d.tries)
	}
	d.fail = false
	now = now.Add(retryMax)
	if !a.inspectEndpoint(context.Background(), e) || d.tampered || d.repairs != 1 {
		t.Fatalf("after the failed repairs: repairs %d, still tampered %v; want repaired when due", d.repairs, d.tampered)
	}
	tampered, repaired := a.tamper.snapshot()
	if r := string(loader.TamperForeignFirst); tampered[r] != 1 || repaired[r] != 1 {
		t.Fatalf("counts tampered %v repaired %v, want foreign_first 1 and 1", tampered, repaired)
	}
}

// TestTamperRedoneRepairedEachCheck: a tamper the container does again
// right after each repair (the look after the repair finds it) is
// repaired at every check, not after a retry's backoff (up to retryMax
// without programs), and the check asks to look again. It is one tamper,
// never repaired.
func TestTamperRedoneRepairedEachCheck(t *testing.T) {
	d := &tamperedDatapath{tampered: true, redo: true}
	e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	a := tamperEngine(d, e)
	now := time.Unix(1000, 0)
	a.tamper.clock = func() time.Time { return now }
	for i := 1; i <= 5; i++ {
		if a.inspectEndpoint(context.Background(), e) {
			t.Fatalf("check %d: the tamper is back, and the check does not ask to look again", i)
		}
		if d.tries != i {
			t.Fatalf("check %d: %d repairs tried, want %d", i, d.tries, i)
		}
		now = now.Add(retryFirst / 2)
	}
	tampered, repaired := a.tamper.snapshot()
	if r := string(loader.TamperForeignFirst); tampered[r] != 1 || repaired[r] != 0 {
		t.Fatalf("counts tampered %v repaired %v, want foreign_first 1 and 0", tampered, repaired)
	}
}

// TestTamperNewEndpointOfSameName: a tamper mvlan could not repair on a
// removed container does not hide the same tamper on a new container of
// the same name (the tampers are the endpoint's, by ID).
func TestTamperNewEndpointOfSameName(t *testing.T) {
	d := &tamperedDatapath{tampered: true, fail: true}
	e1 := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	e2 := e1
	e2.ID = "e2"
	a := tamperEngine(d, e1, e2)
	a.inspectEndpoint(context.Background(), e1)
	d.fail = false
	a.inspectEndpoint(context.Background(), e2)
	if d.tampered || d.repairs != 1 {
		t.Fatalf("the new c1's tamper: repairs %d, still tampered %v; want repaired", d.repairs, d.tampered)
	}
}

// TestTamperNotHostKeyed: a Docker endpoint made ready while its attach in
// its sandbox failed has its link's keys in the host namespace; the check
// does not look at it by that index (the sandbox's link with it is not
// its own), only at the endpoints keyed in their namespaces.
func TestTamperNotHostKeyed(t *testing.T) {
	keyed := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", NetnsCookie: 9, Ifindex: 2, State: Ready}
	hostKeyed := endpoint{ID: "e2", Name: "c2", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c2", NetnsCookie: 1, Ifindex: 4, State: Ready}
	a := tamperEngine(&tamperedDatapath{}, keyed, hostKeyed)
	a.hostCookie = 1
	got := a.readyEndpoints(a.nets["n1"])
	if len(got) != 1 || got[0].ID != keyed.ID {
		t.Fatalf("the check looks at %+v; want c1 only, not c2 keyed in the host namespace", got)
	}
}

// TestTamperNotDuringRemoval: an endpoint whose removal began after the
// check read it (its programs going, then its link) is not counted as
// tampered with nor repaired.
func TestTamperNotDuringRemoval(t *testing.T) {
	d := &tamperedDatapath{tampered: true}
	e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	removing := e
	removing.State = Removing
	a := tamperEngine(d, removing)
	a.inspectEndpoint(context.Background(), e) // the check's copy, read while it was ready
	if tampered, _ := a.tamper.snapshot(); d.repairs != 0 || tampered[string(loader.TamperForeignFirst)] != 0 {
		t.Fatalf("repairs %d, tampered %v; want none for an endpoint being removed", d.repairs, tampered)
	}
}

// TestTamperFindingGoesWithEndpoint: Check lists an endpoint's tamper,
// repaired or not, while the endpoint is there, and not once it is gone
// (another endpoint's stays); a new endpoint of the same name starts
// with none.
func TestTamperFindingGoesWithEndpoint(t *testing.T) {
	d := &tamperedDatapath{tampered: true}
	e1 := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	e2 := endpoint{ID: "e2", Name: "c2", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c2", Ifindex: 3, State: Ready}
	a := tamperEngine(d, e1, e2)
	for _, e := range []endpoint{e1, e2} {
		d.tampered = true
		a.inspectEndpoint(context.Background(), e)
	}
	if got := a.tamper.findings(); len(got) != 2 || got["c1"] == "" || got["c2"] == "" || d.repairs != 2 {
		t.Fatalf("findings %v after %d repairs; want c1's and c2's, both repaired", got, d.repairs)
	}
	a.tamper.drop(e1.ID)
	if got := a.tamper.findings(); len(got) != 1 || got["c2"] == "" {
		t.Fatalf("findings %v after c1 went; want c2's only", got)
	}
	a.tamper.seen("e3", "c1", nil, func(string) bool { return false }) // a new c1, untouched
	if got := a.tamper.findings(); got["c1"] != "" {
		t.Errorf("findings %v; want none for the new c1", got)
	}
}

// aliveLinks is linksOnly whose namespaces are all alive, inode 7.
type aliveLinks struct{ linksOnly }

func (aliveLinks) Check(string) (uint64, error) { return 7, nil }

// TestSandboxLink: an endpoint's link in a Docker sandbox is the macvlan
// with its MAC on the network's parent on the host; one with that MAC on
// a link of the parent's index in a namespace the container made is not.
func TestSandboxLink(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	n := &network{parentIndex: 7}
	e := endpoint{Netns: "/run/netns/c", NetnsInode: 7, MAC: mac}
	forged := link.Info{Name: "eth0", Kind: "macvlan", Index: 2, ParentIndex: 7, LowerElsewhere: true, MAC: mac}
	real := forged
	real.Name, real.Index, real.LowerOnHost = "eth1", 3, true
	for _, tc := range []struct {
		links []link.Info
		want  string
	}{
		{[]link.Info{forged, real}, "eth1"},
		{[]link.Info{forged}, ""},
	} {
		a := &Engine{ns: aliveLinks{linksOnly{links: tc.links}}}
		l, err := a.sandboxLink(n, e)
		if l.Name != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("links %v: %q, %v; want %q", tc.links, l.Name, err, tc.want)
		}
	}
}

// failingLinks is a Namespaces whose look at links fails with err.
type failingLinks struct {
	Namespaces
	err error
}

func (f failingLinks) Macvlans(string, int) ([]link.Info, error) { return nil, f.err }

// TestEndpointLinksUnknown: a look at the links that fails finds nothing
// and says so in the log, unless the namespace is gone (the sweep's).
func TestEndpointLinksUnknown(t *testing.T) {
	for _, tc := range []struct {
		err    error
		logged bool
	}{{errors.New("netlink: no buffer space"), true}, {fmt.Errorf("open netns: %w", link.ErrNotFound), false}} {
		var log strings.Builder
		a := &Engine{ns: failingLinks{err: tc.err}, log: slog.New(slog.NewTextHandler(&log, nil))}
		got := a.endpointLinks(endpoint{Name: "c1", Netns: "/run/netns/c", Ifindex: 2}, 7)
		if got.own != nil || got.stranger != nil || len(got.nested) != 0 {
			t.Errorf("%v: found %+v", tc.err, got)
		}
		if logged := strings.Contains(log.String(), "links of the endpoint's namespace are unknown"); logged != tc.logged {
			t.Errorf("%v: logged %v, want %v:\n%s", tc.err, logged, tc.logged, log.String())
		}
	}
}

// modedLinks is a namespace with the endpoint's own link only, whose
// macvlan settings SetMacvlanMode sets (or fails to, while fail).
type modedLinks struct {
	linksOnly
	own  *link.Info
	fail bool
	sets []string // kind/mode of each SetMacvlanMode
}

func (m *modedLinks) Macvlans(string, int) ([]link.Info, error) { return []link.Info{*m.own}, nil }
func (m *modedLinks) SetMacvlanMode(_ string, _ int, kind, mode string) error {
	m.sets = append(m.sets, kind+"/"+mode)
	if m.fail {
		return errors.New("cannot")
	}
	m.own.Macvlan = &link.MacvlanConf{Mode: mode}
	return nil
}

// TestTamperModeChanged: the endpoint's link in another macvlan mode
// than its network's, with flags, or with a source list is a tamper
// (mode_changed), set back to the network's mode, counted and repaired
// once; one as mvlan made it, or whose settings the look did not give, is
// none. A repair that fails is not counted as one.
func TestTamperModeChanged(t *testing.T) {
	for _, tc := range []struct {
		what    string
		netMode string
		conf    *link.MacvlanConf
		fail    bool
		want    string // the repair's kind/mode; "": no tamper
	}{
		{"as made", "bridge", &link.MacvlanConf{Mode: "bridge"}, false, ""},
		{"as made, the network's mode unset", "", &link.MacvlanConf{Mode: "bridge"}, false, ""},
		{"vepa as made", "vepa", &link.MacvlanConf{Mode: "vepa"}, false, ""},
		{"settings unknown", "bridge", nil, false, ""},
		{"source with a list", "bridge", &link.MacvlanConf{Mode: "source", Sources: 2}, false, "macvlan/bridge"},
		{"source nodst", "vepa", &link.MacvlanConf{Mode: "source", Flags: link.MacvlanNoDst, Sources: 1}, false, "macvlan/vepa"},
		{"private on a bridge network", "bridge", &link.MacvlanConf{Mode: "private"}, false, "macvlan/bridge"},
		{"a flag", "bridge", &link.MacvlanConf{Mode: "bridge", Flags: link.MacvlanNoDst}, false, "macvlan/bridge"},
		{"nopromisc on passthru", "passthru", &link.MacvlanConf{Mode: "passthru", Flags: link.MacvlanNoPromisc}, false, "macvlan/passthru"},
		{"repair fails", "bridge", &link.MacvlanConf{Mode: "source", Sources: 1}, true, "macvlan/bridge"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
			a := tamperEngine(&tamperedDatapath{}, e)
			a.nets["n1"].Mode = tc.netMode
			ns := &modedLinks{fail: tc.fail, own: &link.Info{Name: "eth0", Kind: "macvlan", Index: 2, ParentIndex: 7,
				LowerElsewhere: true, LowerOnHost: true, Macvlan: tc.conf}}
			a.ns = ns
			a.inspectEndpoint(context.Background(), e)
			if got := strings.Join(ns.sets, " "); got != tc.want {
				t.Errorf("repairs %q, want %q", got, tc.want)
			}
			tampered, repaired := a.tamper.snapshot()
			wantT, wantR := uint64(0), uint64(0)
			if tc.want != "" {
				wantT = 1
				if !tc.fail {
					wantR = 1
				}
			}
			if tampered[TamperModeChanged] != wantT || repaired[TamperModeChanged] != wantR {
				t.Errorf("mode_changed tampered %d repaired %d, want %d and %d", tampered[TamperModeChanged], repaired[TamperModeChanged], wantT, wantR)
			}
			if tc.want == "" || tc.fail {
				return
			}
			// Repaired: the next look finds nothing.
			a.inspectEndpoint(context.Background(), e)
			if len(ns.sets) != 1 {
				t.Errorf("after the repair, looked again: repairs %v", ns.sets)
			}
		})
	}
}

// halfRepaired has a program ahead of mvlan's on ingress, mvlan's
// detached on egress and a late filter there; a repair holds on ingress
// and for the late filter only (the container takes egress's program off
// again at once).
type halfRepaired struct {
	Datapath
	ingress, late bool
}

func (d *halfRepaired) InspectEndpoint(context.Context, string, int) ([]loader.Finding, error) {
	out := []loader.Finding{{Hook: loader.Egress, Tamper: loader.TamperDetached}}
	if d.ingress {
		out = append(out, loader.Finding{Hook: loader.Ingress, Tamper: loader.TamperForeignFirst})
	}
	if d.late {
		out = append(out, loader.Finding{Hook: loader.Egress, Tamper: loader.TamperLateFilter})
	}
	return out, nil
}

func (d *halfRepaired) RepairEndpoint(context.Context, string, int, []loader.Finding) error {
	d.ingress, d.late = false, false
	return nil
}

// TestTamperRepairPerHook: a repair that held counts (reattach_total)
// though another's did not hold, on the other hook or on the same one;
// that other is counted as a tamper, not as repaired.
func TestTamperRepairPerHook(t *testing.T) {
	d := &halfRepaired{ingress: true, late: true}
	e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	a := tamperEngine(d, e)
	a.inspectEndpoint(context.Background(), e)
	a.inspectEndpoint(context.Background(), e) // clean now but for egress's program: no second count
	tampered, repaired := a.tamper.snapshot()
	ff, det, late := string(loader.TamperForeignFirst), string(loader.TamperDetached), string(loader.TamperLateFilter)
	if tampered[ff] != 1 || tampered[det] != 1 || tampered[late] != 1 || repaired[ff] != 1 || repaired[det] != 0 || repaired[late] != 1 {
		t.Fatalf("counts tampered %v repaired %v; want foreign_first 1 and 1, detached 1 and 0, late_filter 1 and 1", tampered, repaired)
	}
}

// TestTamperWarnsOncePerMinute: a container that tampers again after
// each repair is counted every time and logged as a warning once a
// minute (the rest at debug): its log stays readable.
func TestTamperWarnsOncePerMinute(t *testing.T) {
	d := &tamperedDatapath{}
	e := endpoint{ID: "e1", Name: "c1", NetworkID: "n1", IfName: "eth0", Netns: "/run/netns/c1", Ifindex: 2, State: Ready}
	a := tamperEngine(d, e)
	var log bytes.Buffer
	a.log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := time.Unix(1000, 0)
	a.tamper.clock = func() time.Time { return now }
	for range 5 {
		d.tampered = true
		a.inspectEndpoint(context.Background(), e)
		now = now.Add(time.Second)
	}
	now = now.Add(tamperWarnEvery)
	d.tampered = true
	a.inspectEndpoint(context.Background(), e)
	if _, repaired := a.tamper.snapshot(); repaired[string(loader.TamperForeignFirst)] != 6 {
		t.Errorf("repairs counted %v; want foreign_first 6", repaired)
	}
	if warns, debugs := strings.Count(log.String(), "level=WARN"), strings.Count(log.String(), "level=DEBUG msg=\"endpoint tampered with\""); warns != 2 || debugs != 4 {
		t.Errorf("6 tampers in 66 s logged %d warnings and %d debug lines; want 2 and 4:\n%s", warns, debugs, log.String())
	}
}
