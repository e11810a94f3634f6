// Package loader loads mvlan's BPF programs, pins their maps under bpffs,
// attaches them with TCX or clsact+cls_bpf, and gives typed access to the
// maps.
//
// The programs (C in ../bpf) are:
//   - ep_egress and ep_ingress, on each endpoint's macvlan slave inside the
//     container's netns: anti-spoofing and first-hop guards on what it sends,
//     the same rules applied again on what it receives from other local
//     endpoints (in the receiver's netns, out of the sender's reach),
//     cross-network isolation, per-network counters;
//   - parent_ingress and parent_egress, on each network's parent link and on
//     the trunk below a sub-interface, in the agent's netns: per-VLAN, flood,
//     hairpin and east-west counters; egress applies the endpoints' rules
//     to their frames.
//
// Every program returns "next" (TC_ACT_UNSPEC / TCX_NEXT) unless it drops,
// so other tools' programs on the same hooks keep working.
//
// Identity: ifindexes are per netns, so endpoints are keyed by {netns cookie,
// ifindex}. The endpoint programs are loaded and verified once per Load and
// shared by every endpoint: attached to each as they are where they can
// read their device's namespace cookie (Linux >= 6.2), else through a
// stub per netns of a few instructions (its cookie a constant) that
// tail-calls them through the pinned program array ep_progs (epdirect.go;
// see bpf/include/endpoint.h for why not bpf_get_netns_cookie).
//
// Persistence: maps are pinned by name under the pin directory and reused by
// the next Load, so tables and counters survive an agent restart; TCX links
// are pinned under pinDir/links, so attachments survive it too; the
// programs are pinned under pinDir/progs and taken again, unverified, by the
// next Load of the same build (progpin.go). Attaching
// again replaces our program in place and never adds a second one.
package loader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
)

// mapNames are the maps every object shares (bpf/include/maps.h).
var mapNames = []string{
	"ep_table", "ep_by_mac", "ep_netns", "ep_by_ip", "endpoints", "mac_index", "ip4_index", "ip6_index", "parents", "parent_index",
	"vlan_stats", "net_stats", "drop_stats", "malformed", "map_full", "ep_progs",
	"ra_sources", "gateways", "dhcp_ids",
}

// Datapath is the loaded datapath: the pinned maps, the parent programs and
// the endpoint programs of each netns in use. Its methods are safe for
// concurrent use.
type Datapath struct {
	pinDir string
	// maps are the shared maps (bpf/include/maps.h) in bpf2go's generated
	// struct (every one of them is in parent_ingress's object); byName
	// holds the same maps by their C names, for MapReplacements and for
	// accounting by map name (map_full).
	maps   parentIngressMaps
	byName map[string]*ebpf.Map
	specs  map[string]*ebpf.CollectionSpec // by program name

	parentIngress, parentEgress *ebpf.Program
	// epIngress and epEgress are the shared endpoint programs, loaded once
	// and put in ep_progs; attached to every endpoint if direct, else the
	// stubs of each netns tail-call them.
	epIngress, epEgress *ebpf.Program
	direct              bool              // PathDirect (epdirect.go)
	sharedIDs           [2]ebpf.ProgramID // of epIngress and epEgress
	directErr           error             // why PathAuto fell back to PathStub

	tables  sync.Mutex   // serialises SetEndpoint and DeleteEndpoint; guards macs and slots
	macs    *index       // mac_index
	addrs   *addrIndexes // ip4_index, ip6_index
	parentx *index       // parent_index
	slots   *slots       // of the endpoints array
	// netnsRefs counts the endpoint table's rows per namespace cookie
	// (ep_netns, netnsrefs.go).
	netnsRefs map[uint64]int
	parents   parentCache
	full      fullCounts
	// reading is held by a read of the counters and by RetireParent, so
	// that a read sees a retired network's share in one place exactly.
	reading sync.Mutex
	vlans   atomic.Int64 // vlan_stats entries at the last Counters: the next one's map size

	mu        sync.Mutex             // guards the attachment state below
	epProgs   map[uint64]*epPrograms // by netns cookie
	preloaded map[uint64]*epPrograms // prepared ahead (stubs, not pinned; sockets) (stubpre.go)
	attached  attachList
	qdiscs    map[ifaceKey]bool  // clsact qdiscs this Datapath created
	lingering map[attachKey]bool // TCX pins ForgetEndpoint kept: their device was still there
	lingers   atomic.Int32       // len(lingering), read without mu (ForgetLingering)
	ids       programIDs         // the programs it loaded (ForeignPrograms)
	watch     *tcxWatch          // TCX attaches by others (WatchTCX), or nil

	guards handoffGuards // handoff_guard per network (handoffguard.go)
}

// Load loads the datapath with its maps pinned in pinDir (e.g.
// /sys/fs/bpf/mvlan), mounting bpffs first if pinDir is not on one. Maps
// already pinned there are reused, so counters and tables survive a restart;
// a pinned map whose layout no longer matches is replaced by an empty one.
// path says how the endpoint programs find their endpoint (epdirect.go).
// Load attaches nothing.
func Load(ctx context.Context, pinDir string, path EndpointPath) (*Datapath, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resolved, err := resolvePath(path)
	if err != nil {
		return nil, err
	}
	if err := ensureBPFFS(pinDir); err != nil {
		return nil, err
	}
	d, err := loadOn(pinDir, resolved)
	if err != nil && path == PathAuto && resolved == PathDirect {
		// The kernel names the kfunc but refuses the direct programs (a
		// verifier of its own, no JIT): the stubs work everywhere.
		directErr := err
		if d, err = loadOn(pinDir, PathStub); err == nil {
			d.directErr = directErr
		}
	}
	return d, err
}

// loadOn is Load on one path.
func loadOn(pinDir string, path EndpointPath) (*Datapath, error) {
	d := &Datapath{
		pinDir:    pinDir,
		byName:    map[string]*ebpf.Map{},
		epProgs:   map[uint64]*epPrograms{},
		preloaded: map[uint64]*epPrograms{},
		attached:  attachList{m: map[attachKey]Attachment{}},
		qdiscs:    map[ifaceKey]bool{},
		direct:    path == PathDirect,
	}
	if err := d.load(); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return d, nil
}

func (d *Datapath) load() error {
	d.ids.baseline()
	if err := d.loadQdiscMarks(); err != nil {
		return err
	}
	var err error
	if d.specs, err = loadSpecs(d.direct); err != nil {
		return err
	}
	for _, name := range mapNames {
		if d.byName[name], err = openPinnedMap(d.specs["parent_ingress"].Maps[name], d.pinDir); err != nil {
			return err
		}
	}
	// Assign takes the maps out of the collection it is given: a copy,
	// so that byName keeps them (Close closes them through byName).
	if err := (&ebpf.Collection{Maps: maps.Clone(d.byName)}).Assign(&d.maps); err != nil {
		return fmt.Errorf("assign the shared maps: %w", err)
	}
	if err := d.loadIndex(); err != nil {
		return err
	}
	if err := d.loadParents(); err != nil {
		return err
	}
	if err := d.loadPrograms(); err != nil {
		return err
	}
	return d.shareEndpointPrograms()
}

// Slots of ep_progs (enum ep_slot).
const (
	slotIngress uint32 = 0
	slotEgress  uint32 = 1
)

// shareEndpointPrograms puts the shared endpoint programs in ep_progs,
// replacing those of a previous agent in place (under PathDirect too:
// stubs a previous agent attached run them until the start re-attaches).
// A slot that holds the program already is left alone.
func (d *Datapath) shareEndpointPrograms() error {
	for slot, p := range map[uint32]*ebpf.Program{slotIngress: d.epIngress, slotEgress: d.epEgress} {
		var id uint32
		if err := d.maps.EpProgs.Lookup(slot, &id); err == nil && id != 0 && ebpf.ProgramID(id) == programID(p) {
			continue
		}
		if err := d.maps.EpProgs.Put(slot, p); err != nil {
			return fmt.Errorf("put the shared endpoint program in slot %d: %w", slot, err)
		}
	}
	return nil
}

// loadSpecs reads the objects of the programs, the endpoint programs'
// built to read their device's cookie if direct.
func loadSpecs(direct bool) (map[string]*ebpf.CollectionSpec, error) {
	specs := map[string]*ebpf.CollectionSpec{}
	for name, obj := range objectsFor(direct) {
		spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(obj))
		if err != nil {
			return nil, fmt.Errorf("read object of %s: %w", name, err)
		}
		specs[name] = spec
	}
	return specs, nil
}

// openPinnedMap creates the map or opens the one pinned under its name;
// an incompatible pinned map is unpinned and replaced.
func openPinnedMap(spec *ebpf.MapSpec, pinDir string) (*ebpf.Map, error) {
	if spec == nil {
		return nil, errors.New("map missing from the BPF object")
	}
	spec = spec.Copy()
	spec.Pinning = ebpf.PinByName
	opts := ebpf.MapOptions{PinPath: pinDir}
	m, err := ebpf.NewMapWithOptions(spec, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		if rerr := os.Remove(filepath.Join(pinDir, spec.Name)); rerr != nil {
			return nil, fmt.Errorf("replace incompatible map %s: %w", spec.Name, rerr)
		}
		m, err = ebpf.NewMapWithOptions(spec, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", spec.Name, err)
	}
	return m, nil
}

// loadAs loads one program of its object against the shared maps, after
// setting the object's constants (nil: none), under the name the kernel
// shows for it. Safe for concurrent use; the caller notes the program as
// ours (d.ids).
func (d *Datapath) loadAs(name, kernelName string, consts map[string]any) (*ebpf.Program, error) {
	spec := d.specs[name].Copy()
	if ps := spec.Programs[name]; ps != nil {
		ps.Name = kernelName
	}
	for v, val := range consts {
		vs, ok := spec.Variables[v]
		if !ok {
			return nil, fmt.Errorf("program %s has no constant %s", name, v)
		}
		if err := vs.Set(val); err != nil {
			return nil, fmt.Errorf("program %s: set %s: %w", name, v, err)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: d.byName})
	if err != nil {
		return nil, fmt.Errorf("load program %s: %w", name, err)
	}
	prog := coll.DetachProgram(name)
	coll.Close()
	if prog == nil {
		return nil, fmt.Errorf("program %s missing from its object", name)
	}
	return prog, nil
}

// Close releases the programs and maps held by this process. Pinned maps,
// TCX links and tc filters stay: the datapath keeps working and counting
// until the next Load takes it over, or Detach* removes it. The Datapath
// must not be used after Close.
func (d *Datapath) Close() error {
	gerr := d.closeGuards(func(uint32) bool { return true }) // before mu: guardProg takes it inside guards.mu
	d.mu.Lock()
	defer d.mu.Unlock()
	errs := []error{gerr}
	for cookie, p := range d.epProgs {
		errs = append(errs, p.close())
		delete(d.epProgs, cookie)
	}
	errs = append(errs, d.closePrepared())
	if d.watch != nil {
		errs = append(errs, d.watch.Close())
		d.watch = nil
	}
	for _, p := range []*ebpf.Program{d.parentIngress, d.parentEgress, d.epIngress, d.epEgress} {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, m := range d.byName {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	d.parentIngress, d.parentEgress, d.epIngress, d.epEgress, d.byName = nil, nil, nil, nil, nil
	d.maps = parentIngressMaps{}
	return errors.Join(errs...)
}

// epPrograms are what is attached to the hooks of one netns's endpoints:
// its stubs (stub.go, its cookie a constant), which tail-call the shared
// programs, or under PathDirect the shared programs themselves (shared).
type epPrograms struct {
	ingress, egress *ebpf.Program
	shared          bool              // ingress and egress are d.epIngress, d.epEgress: not closed here
	ids             [2]ebpf.ProgramID // of ingress and egress, once looked up (id)
	users           map[int]Mode      // ifindexes attached with them, in the mode last asked for
	// rtnl is an rtnetlink socket in the namespace, prepared for its
	// first tc attach (PrepareNetns); nil once used, or if none.
	rtnl *os.File
}

func (p *epPrograms) close() error {
	var err error
	if !p.shared {
		err = errors.Join(p.ingress.Close(), p.egress.Close())
	}
	if f := p.takeSocket(); f != nil {
		err = errors.Join(err, f.Close())
	}
	return err
}

// takeSocket returns the prepared socket (nil if none) for the caller to
// use and close.
func (p *epPrograms) takeSocket() *os.File {
	f := p.rtnl
	p.rtnl = nil
	return f
}

// endpointPrograms returns the endpoint programs of the netns with this
// cookie, loading them on first use. The caller holds d.mu.
func (d *Datapath) endpointPrograms(cookie uint64) (*epPrograms, error) {
	if p, ok := d.epProgs[cookie]; ok {
		return p, nil
	}
	if d.direct {
		p := d.sharedPrograms()
		if prep, ok := d.preloaded[cookie]; ok { // its socket
			delete(d.preloaded, cookie)
			p.rtnl = prep.takeSocket()
		}
		d.epProgs[cookie] = p
		return p, nil
	}
	// Prepared for a namespace just made: nothing of it can be pinned.
	if p, ok, err := d.takePrepared(cookie); ok {
		if err != nil {
			return nil, err
		}
		d.epProgs[cookie] = p
		return p, nil
	}
	if ingress, egress, ok := d.pinnedStubs(cookie); ok {
		p := &epPrograms{ingress: ingress, egress: egress, users: map[int]Mode{}}
		d.epProgs[cookie] = p
		return p, nil
	}
	// Named after their hook's program: what bpftool and the attachment
	// checks show.
	stub := func(slot uint32, name string) (*ebpf.Program, error) {
		return d.loadStub(name, cookie, slot)
	}
	ingress, err := stub(slotIngress, "ep_ingress")
	if err != nil {
		return nil, err
	}
	egress, err := stub(slotEgress, "ep_egress")
	if err != nil {
		return nil, errors.Join(err, ingress.Close())
	}
	if err := d.pinStubs(cookie, ingress, egress); err != nil {
		return nil, errors.Join(err, ingress.Close(), egress.Close())
	}
	p := &epPrograms{ingress: ingress, egress: egress, users: map[int]Mode{}}
	d.epProgs[cookie] = p
	return p, nil
}

// releaseEndpointPrograms forgets ifindex as a user of the cookie's
// programs and closes them when nobody uses them. Attached programs live on
// in the kernel as long as a link or filter holds them. The caller holds d.mu.
func (d *Datapath) releaseEndpointPrograms(cookie uint64, ifindex int) error {
	p, ok := d.epProgs[cookie]
	if !ok {
		return nil
	}
	delete(p.users, ifindex)
	if len(p.users) > 0 {
		return nil
	}
	delete(d.epProgs, cookie)
	if p.shared {
		return p.close()
	}
	d.ids.forget(p.ingress)
	d.ids.forget(p.egress)
	return errors.Join(d.unpinStubs(cookie), p.close())
}
