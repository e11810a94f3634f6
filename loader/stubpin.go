package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// The stubs of each netns are pinned under pinDir/stubs/<cookie>_<hook>.
// A restarted agent takes the stubs its endpoints' filters already run
// instead of loading new ones, so that a filter that runs the right stub
// on the right link is left as it is (attachTC): starting with many
// endpoints loads and attaches nothing for them. The pins go with the
// last endpoint of the netns, and on start those of namespaces without an
// endpoint (PruneOrphans).

func (d *Datapath) stubPin(cookie uint64, hook Hook) string {
	return filepath.Join(d.pinDir, "stubs", fmt.Sprintf("%d_%s", cookie, hook))
}

// pinnedStubs returns cookie's pinned stubs, or ok false if there are not
// both (or one is not a stub of ours: wrong program name).
func (d *Datapath) pinnedStubs(cookie uint64) (ingress, egress *ebpf.Program, ok bool) {
	load := func(hook Hook, name string) *ebpf.Program {
		p, err := ebpf.LoadPinnedProgram(d.stubPin(cookie, hook), nil)
		if err != nil {
			return nil
		}
		if info, err := p.Info(); err != nil || info.Name != name {
			p.Close()
			return nil
		}
		return p
	}
	if ingress = load(Ingress, "ep_ingress"); ingress == nil {
		return nil, nil, false
	}
	if egress = load(Egress, "ep_egress"); egress == nil {
		ingress.Close()
		return nil, nil, false
	}
	return ingress, egress, true
}

// pinStubs pins cookie's freshly loaded stubs, replacing older pins.
func (d *Datapath) pinStubs(cookie uint64, ingress, egress *ebpf.Program) error {
	if err := os.MkdirAll(filepath.Join(d.pinDir, "stubs"), 0o700); err != nil {
		return fmt.Errorf("create stub pin directory: %w", err)
	}
	for hook, p := range map[Hook]*ebpf.Program{Ingress: ingress, Egress: egress} {
		pin := d.stubPin(cookie, hook)
		if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace stub pin: %w", err)
		}
		if err := p.Pin(pin); err != nil {
			return fmt.Errorf("pin stub: %w", err)
		}
	}
	return nil
}

// unpinStubs removes cookie's stub pins.
func (d *Datapath) unpinStubs(cookie uint64) error {
	var errs []error
	for _, hook := range []Hook{Ingress, Egress} {
		if err := os.Remove(d.stubPin(cookie, hook)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin stub: %w", err))
		}
	}
	return errors.Join(errs...)
}

// pruneStubs unpins the stubs of netns cookies not in live.
func (d *Datapath) pruneStubs(live map[uint64]bool) error {
	entries, err := os.ReadDir(filepath.Join(d.pinDir, "stubs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune stubs: %w", err)
	}
	var errs []error
	for _, e := range entries {
		c, _, _ := strings.Cut(e.Name(), "_")
		cookie, err := strconv.ParseUint(c, 10, 64)
		if err == nil && live[cookie] {
			continue
		}
		if err := os.Remove(filepath.Join(d.pinDir, "stubs", e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("prune stubs: %w", err))
		}
	}
	return errors.Join(errs...)
}

// programID is p's kernel ID, 0 if it cannot be read.
func programID(p *ebpf.Program) ebpf.ProgramID {
	info, err := p.Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return id
}
