package loader

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"
)

// The four programs of the objects (parent and endpoint programs, each
// several thousand verifier instructions) are pinned under
// pinDir/progs/NAME-KEY, KEY a hash of the object they were loaded from.
// A restarted agent takes a pinned program instead of loading and verifying
// it again (most of the time of a start) when it is named for this build's
// object and uses only the maps this Load opened: a map replaced for a new
// layout leaves the program that used the old one stale, and it is loaded
// again. The first start of a new build loads the four in parallel and
// pins them; pins of other builds go once the new ones are in place.

// progPinVersion is part of the pin key: bump it when loadAs changes what
// it makes of an object (constants, names, map replacements), so that no
// agent takes a program loaded the old way.
const progPinVersion = "1"

// objectsFor returns the ELF objects of the programs, by program name:
// those that read their device's cookie (and a frame's socket's) if
// direct.
func objectsFor(direct bool) map[string][]byte {
	objs := map[string][]byte{
		"parent_ingress": _ParentIngressBytes,
		"parent_egress":  _ParentEgressBytes,
		"ep_ingress":     _EpIngressBytes,
		"ep_egress":      _EpEgressBytes,
		"handoff_guard":  _HandoffGuardBytes, // no cookie: one build
	}
	if direct {
		objs["ep_ingress"], objs["ep_egress"] = _EpIngressDevBytes, _EpEgressDevBytes
		objs["parent_ingress"], objs["parent_egress"] = _ParentIngressDevBytes, _ParentEgressDevBytes
	}
	return objs
}

// progPin is where the program name of this build's object is pinned.
func (d *Datapath) progPin(name string) string {
	h := sha256.New()
	h.Write([]byte(progPinVersion + "\x00" + name + "\x00"))
	h.Write(objectsFor(d.direct)[name])
	return filepath.Join(d.pinDir, "progs", fmt.Sprintf("%s-%x", name, h.Sum(nil)[:8]))
}

// loadPrograms sets the parent and shared endpoint programs: the pinned
// ones that are still right, the others loaded (in parallel) and pinned.
func (d *Datapath) loadPrograms() (err error) {
	names := []string{"parent_ingress", "parent_egress", "ep_ingress", "ep_egress"}
	progs := make([]*ebpf.Program, len(names))
	defer func() {
		if err != nil {
			for _, p := range progs {
				if p != nil {
					p.Close()
				}
			}
		}
	}()
	ours, err := d.mapIDs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(d.pinDir, "progs"), 0o700); err != nil {
		return fmt.Errorf("create program pin directory: %w", err)
	}
	// Only the loads run on other threads: the pins are looked up and
	// made on the caller's, whose mount namespace may be its own (doctor).
	var load []int
	for i, name := range names {
		if progs[i] = pinnedProgram(d.progPin(name), name, ours); progs[i] == nil {
			load = append(load, i)
		}
	}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for _, i := range load {
		wg.Go(func() { progs[i], errs[i] = d.loadAs(names[i], names[i], nil) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, i := range load {
		if err := pinProgram(progs[i], d.progPin(names[i])); err != nil {
			return fmt.Errorf("pin program %s: %w", names[i], err)
		}
	}
	for _, p := range progs {
		d.ids.note(p)
	}
	d.parentIngress, d.parentEgress, d.epIngress, d.epEgress = progs[0], progs[1], progs[2], progs[3]
	d.sharedIDs = [2]ebpf.ProgramID{programID(d.epIngress), programID(d.epEgress)}
	return d.pruneProgPins(names)
}

// mapIDs are the kernel IDs of the shared maps this Load opened.
func (d *Datapath) mapIDs() (map[ebpf.MapID]bool, error) {
	ids := map[ebpf.MapID]bool{}
	for name, m := range d.byName {
		info, err := m.Info()
		if err != nil {
			return nil, fmt.Errorf("map %s: %w", name, err)
		}
		id, ok := info.ID()
		if !ok {
			return nil, fmt.Errorf("map %s: the kernel gives no ID", name)
		}
		ids[id] = true
	}
	return ids, nil
}

// pinProgram pins p at pin atomically: a crash leaves the old pin or the
// new one.
func pinProgram(p *ebpf.Program, pin string) error {
	tmp := pin + "_new" // bpffs refuses names with a dot
	_ = os.Remove(tmp)
	if err := p.Pin(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, pin); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

// pinnedProgram is the program pinned at pin if it is named name and uses
// no map but ours; nil otherwise.
func pinnedProgram(pin, name string, ours map[ebpf.MapID]bool) *ebpf.Program {
	p, err := ebpf.LoadPinnedProgram(pin, nil)
	if err != nil {
		return nil
	}
	info, err := p.Info()
	if err != nil || info.Name != name || p.Type() != ebpf.SchedCLS {
		p.Close()
		return nil
	}
	ids, ok := info.MapIDs()
	for _, id := range ids {
		ok = ok && ours[id]
	}
	if !ok {
		p.Close()
		return nil
	}
	return p
}

// pruneProgPins removes the program pins that are not this build's.
func (d *Datapath) pruneProgPins(names []string) error {
	keep := map[string]bool{}
	for _, name := range names {
		keep[filepath.Base(d.progPin(name))] = true
	}
	dir := filepath.Join(d.pinDir, "progs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("prune program pins: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("prune program pins: %w", err))
		}
	}
	return errors.Join(errs...)
}
