package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// state is what a host keeps of a pool on its disk: enough to go on
// handing out addresses of its blocks, and to give back its claims,
// without etcd.
type state struct {
	Blocks  []netip.Prefix
	Claims  map[netip.Addr]bool   // claim keys this host made
	Foreign map[netip.Addr]string // other hosts' claims inside its blocks
	Pending map[netip.Addr]bool   // released claims etcd has not deleted yet
	// Leaving: the network's removal here began (Pool.Close), so etcd may
	// have some of Blocks back; none is used before verify checks them.
	Leaving bool
}

type stateFile struct {
	Blocks  []netip.Prefix        `json:"blocks"`
	Claims  []netip.Addr          `json:"claims,omitempty"`
	Foreign map[netip.Addr]string `json:"foreign,omitempty"`
	Pending []netip.Addr          `json:"pending,omitempty"`
	Leaving bool                  `json:"leaving,omitempty"`
}

func readState(file string) (state, error) {
	st := state{Claims: map[netip.Addr]bool{}, Foreign: map[netip.Addr]string{}, Pending: map[netip.Addr]bool{}}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return st, fmt.Errorf("%s: %w", file, err)
	}
	st.Blocks = f.Blocks
	for _, a := range f.Claims {
		st.Claims[a] = true
	}
	maps.Copy(st.Foreign, f.Foreign)
	for _, a := range f.Pending {
		st.Pending[a] = true
	}
	st.Leaving = f.Leaving
	return st, nil
}

// write replaces file with st, durably (a crash leaves the old or the
// new file).
func (st *state) write(file string) error {
	f := stateFile{Blocks: st.Blocks, Foreign: st.Foreign, Leaving: st.Leaving,
		Claims:  slices.SortedFunc(maps.Keys(st.Claims), netip.Addr.Compare),
		Pending: slices.SortedFunc(maps.Keys(st.Pending), netip.Addr.Compare)}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".cluster-*")
	if err != nil {
		return fmt.Errorf("persist blocks: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		return fmt.Errorf("persist blocks to %s: %w", file, err)
	}
	return nil
}
