// Package enginetest is an in-memory kernel for tests of the engine's
// decisions and of its front ends without root: host links, network
// namespaces with their links and addresses, and a datapath that records
// what it is told. It checks what the real kernel would refuse where the
// engine relies on it (a link name taken, a missing namespace), not more:
// the privileged end-to-end tests are the tests of the kernel side.
package enginetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/engine"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// HostPath is the managed namespace's path in the fake.
const HostPath = "/fake/host"

// Kernel is the fake kernel. Its methods are safe for concurrent use.
type Kernel struct {
	mu       sync.Mutex
	host     map[string]link.Info // by name
	nets     map[string]*netns    // by path
	next     int                  // ifindexes and inodes
	deleted  []string             // host links deleted, in order
	table    map[[2]uint64]loader.Endpoint
	forgot   map[string]int          // MAC -> times its last row went (the datapath stopped knowing it)
	gates    map[string]*Gate        // AttachEndpoint into these namespaces waits
	spareFor map[string]string       // a spare's path -> the /run/netns path it is for
	routes   map[string][]netip.Addr // host shim routes, by link name
	syncs    int                     // SetShimRoutes calls (whole-shim syncs)
	stuck    map[string]int          // /run/netns names whose next deletes fail
	forgets  int                     // ForgetEndpoint calls
	watches  int                     // WatchLinks calls
	watchErr chan error              // ends the link watch under way (BreakLinkWatch)

	// Background is the engines' Config.Background (set before Open).
	Background func(func())
	// Cluster is the engines' Config.Cluster (set before Open): a real
	// etcd's, as in internal/nstest.
	Cluster *cluster.Config
}

// Gate holds AttachEndpoint into one namespace until Open is called.
type Gate struct {
	// Entered is closed when an AttachEndpoint reached the gate.
	Entered chan struct{}
	open    chan struct{}
}

// Open lets the held AttachEndpoint go on.
func (g *Gate) Open() { close(g.open) }

// Gate makes the next AttachEndpoint into the namespace at path wait at
// the returned gate (kernel work that takes long).
func (k *Kernel) Gate(path string) *Gate {
	k.mu.Lock()
	defer k.mu.Unlock()
	g := &Gate{Entered: make(chan struct{}), open: make(chan struct{})}
	k.gates[path] = g
	return g
}

type netns struct {
	ino, cookie uint64
	mark        string
	links       []link.Info
	addrs       map[int][]netip.Prefix
	gateways    []netip.Addr // default routes
}

// New returns a kernel whose host namespace has the given links (up,
// kind "device", no alias).
func New(hostLinks ...string) *Kernel {
	k := &Kernel{host: map[string]link.Info{}, nets: map[string]*netns{}, next: 100,
		table: map[[2]uint64]loader.Endpoint{}, forgot: map[string]int{}, gates: map[string]*Gate{}, spareFor: map[string]string{},
		watchErr: make(chan error, 1)}
	k.nets[HostPath] = &netns{ino: 1, cookie: 1, addrs: map[int][]netip.Prefix{}}
	for _, name := range hostLinks {
		k.AddHostLink(link.Info{Name: name, Kind: "device", Up: true})
	}
	return k
}

// Open opens an engine on the state in dir and this kernel (Start it).
func (k *Kernel) Open(dir string) (*engine.Engine, error) {
	st, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	return engine.New(engine.Config{StateDir: dir, HostNetns: HostPath, Background: k.Background, Cluster: k.Cluster, Log: log}, st, engine.Kernel{
		Host: (*host)(k), Datapath: (*datapath)(k), Netns: (*namespaces)(k),
		Modes: loader.Modes{Parent: loader.ModeTCX, Endpoint: loader.ModeTC}, HostIno: 1})
}

func (k *Kernel) index() int {
	k.next++
	return k.next
}

// AddHostLink adds l to the host namespace (its index if 0 is made up).
func (k *Kernel) AddHostLink(l link.Info) link.Info {
	k.mu.Lock()
	defer k.mu.Unlock()
	if l.Index == 0 {
		l.Index = k.index()
	}
	k.host[l.Name] = l
	return l
}

// RemoveHostLink deletes a host link behind the engine's back.
func (k *Kernel) RemoveHostLink(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.host, name)
}

// HostLink returns the host link name, if there is one.
func (k *Kernel) HostLink(name string) (link.Info, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.host[name]
	return l, ok
}

// Routes returns the host routes the engine set through the shim name.
func (k *Kernel) Routes(name string) []netip.Addr {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := slices.Clone(k.routes[name])
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// RouteSyncs counts the whole-shim route syncs (SetShimRoutes) so far.
func (k *Kernel) RouteSyncs() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.syncs
}

// Deleted lists the host links the engine deleted, in order.
func (k *Kernel) Deleted() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.deleted)
}

// AddNetns makes a namespace at path (someone else's: no mark).
func (k *Kernel) AddNetns(path string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.addNetns(path, "")
}

func (k *Kernel) addNetns(path, mark string) *netns {
	n := &netns{ino: uint64(k.index()), cookie: uint64(k.index()), mark: mark, addrs: map[int][]netip.Prefix{}}
	k.nets[path] = n
	return n
}

// StickNetns makes the next n deletions of /run/netns/NAME fail (a
// busy mount).
func (k *Kernel) StickNetns(name string, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stuck == nil {
		k.stuck = map[string]int{}
	}
	k.stuck[name] = n
}

// HasNetns reports whether a namespace is at path.
func (k *Kernel) HasNetns(path string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nets[path] != nil
}

// RemoveNetns makes the namespace at path vanish.
func (k *Kernel) RemoveNetns(path string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.nets, path)
}

// NetnsLinks lists the links in the namespace at path.
func (k *Kernel) NetnsLinks(path string) []link.Info {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return slices.Clone(n.links)
	}
	return nil
}

// RemoveNetnsLink deletes link name in the namespace at path.
func (k *Kernel) RemoveNetnsLink(path, name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		n.links = slices.DeleteFunc(n.links, func(l link.Info) bool { return l.Name == name })
		n.gateways = nil // the routes went with the link (one link per namespace here)
	}
}

// MoveHostLink moves host link name into the namespace at path as
// newName, up, with addrs: what Docker does with a handed-off link.
func (k *Kernel) MoveHostLink(name, path, newName string, addrs []netip.Prefix) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.host[name]
	n := k.nets[path]
	if !ok || n == nil {
		return fmt.Errorf("move %s to %s: %w", name, path, link.ErrNotFound)
	}
	delete(k.host, name)
	l.Name, l.Up = newName, true
	n.links = append(n.links, l)
	n.addrs[l.Index] = addrs
	return nil
}

// TableHas reports whether the datapath's endpoint table has an entry
// for the endpoint whose link is ifindex in the namespace at path.
func (k *Kernel) TableHas(path string, ifindex int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nets[path]
	if n == nil {
		return false
	}
	_, ok := k.table[[2]uint64{n.cookie, uint64(ifindex)}]
	return ok
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, link.ErrNotFound) }

// host is the Kernel as engine.Host.
type host Kernel

func (h *host) k() *Kernel { return (*Kernel)(h) }

func (h *host) Link(name string) (link.Info, error) {
	if l, ok := h.k().HostLink(name); ok {
		return l, nil
	}
	return link.Info{}, notFound("link " + name)
}

func (h *host) Links() ([]link.Info, error) {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]link.Info, 0, len(k.host))
	for _, l := range k.host {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b link.Info) int { return a.Index - b.Index })
	return out, nil
}

func (h *host) CreateVLAN(_ context.Context, p link.Parent, alias string) error {
	k := h.k()
	lower, ok := k.HostLink(p.Lower)
	if !ok {
		return notFound("link " + p.Lower)
	}
	if _, ok := k.HostLink(p.Name); ok {
		return fmt.Errorf("link %s: %w", p.Name, link.ErrExists)
	}
	k.AddHostLink(link.Info{Name: p.Name, Kind: "vlan", Alias: alias, Up: true, VID: p.VID, ParentIndex: lower.Index})
	return nil
}

func (h *host) CreateHostOnly(_ context.Context, name, alias string) (string, error) {
	h.k().AddHostLink(link.Info{Name: name, Kind: "dummy", Alias: alias, Up: true})
	return "dummy", nil
}

// CreateShim adds the shim as a host link with its host addresses.
func (h *host) CreateShim(_ context.Context, s link.ShimSpec) error {
	k := h.k()
	parent, ok := k.HostLink(s.Parent)
	if !ok {
		return notFound("link " + s.Parent)
	}
	if _, ok := k.HostLink(s.Name); ok {
		return fmt.Errorf("link %s: %w", s.Name, link.ErrExists)
	}
	l := k.AddHostLink(link.Info{Name: s.Name, Kind: "macvlan", Alias: s.Alias, Up: true, MAC: s.MAC, ParentIndex: parent.Index})
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, a := range s.Addrs {
		k.nets[HostPath].addrs[l.Index] = append(k.nets[HostPath].addrs[l.Index], netip.PrefixFrom(a, a.BitLen()))
	}
	return nil
}

// ShimRoutes returns the routes SetShimRoutes set on the link name.
func (h *host) ShimRoutes(name string) ([]netip.Addr, error) {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.routes[name]), nil
}

// SetShimRoutes records dsts as the routes of link name.
func (h *host) SetShimRoutes(name string, _, dsts []netip.Addr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.syncs++
	if _, ok := k.host[name]; !ok {
		return notFound("link " + name)
	}
	if k.routes == nil {
		k.routes = map[string][]netip.Addr{}
	}
	k.routes[name] = slices.Clone(dsts)
	return nil
}

// AddShimRoutes adds dsts to the routes of link name.
func (h *host) AddShimRoutes(name string, _, dsts []netip.Addr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.host[name]; !ok {
		return notFound("link " + name)
	}
	if k.routes == nil {
		k.routes = map[string][]netip.Addr{}
	}
	for _, d := range dsts {
		if !slices.Contains(k.routes[name], d) {
			k.routes[name] = append(k.routes[name], d)
		}
	}
	return nil
}

// DeleteShimRoutes takes dsts out of the routes of link name.
func (h *host) DeleteShimRoutes(name string, dsts []netip.Addr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.host[name]; !ok {
		return notFound("link " + name)
	}
	k.routes[name] = slices.DeleteFunc(k.routes[name], func(a netip.Addr) bool { return slices.Contains(dsts, a) })
	return nil
}

// Stats are zero: the fake passes no traffic.
func (h *host) Stats(name string) (link.Stats, error) {
	if _, ok := h.k().HostLink(name); !ok {
		return link.Stats{}, notFound("link " + name)
	}
	return link.Stats{}, nil
}

func (h *host) Delete(name string) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.host[name]; !ok {
		return nil
	}
	delete(k.host, name)
	delete(k.routes, name) // a link's routes go with it
	k.deleted = append(k.deleted, name)
	return nil
}

func (h *host) DeleteHalfMade(path, ifName string, mac net.HardwareAddr) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		n.links = slices.DeleteFunc(n.links, func(l link.Info) bool {
			return strings.HasPrefix(l.Name, "mvt") || l.Name == ifName && l.Alias == "" && len(mac) > 0 && bytes.Equal(l.MAC, mac)
		})
	}
	return nil
}

func (h *host) DeleteByAlias(alias string) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, l := range k.host {
		if l.Alias == alias {
			delete(k.host, name)
			k.deleted = append(k.deleted, name)
		}
	}
	return nil
}

func (h *host) AttachEndpoint(_ context.Context, s link.EndpointSpec) error {
	k := h.k()
	k.mu.Lock()
	gated := s.NetnsPath
	if to, ok := k.spareFor[gated]; ok { // a spare: gated by where it will be
		gated = to
	}
	g := k.gates[gated]
	delete(k.gates, gated)
	k.mu.Unlock()
	if g != nil {
		close(g.Entered)
		<-g.open
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nets[s.NetnsPath]
	if n == nil {
		return notFound("netns " + s.NetnsPath)
	}
	if _, ok := k.host[s.Parent]; !ok {
		return notFound("parent " + s.Parent)
	}
	for _, l := range n.links {
		if l.Name == s.IfName {
			return fmt.Errorf("link %s in %s: %w", s.IfName, s.NetnsPath, link.ErrExists)
		}
	}
	l := link.Info{Name: s.IfName, Kind: "macvlan", Alias: s.Alias, Index: k.index(), Up: true, MAC: s.MAC}
	n.links = append(n.links, l)
	n.addrs[l.Index] = slices.Clone(s.Addrs)
	if s.BeforeUp != nil {
		// As the real one: the datapath's turn comes before the link is
		// up (it calls back into the in-memory kernel).
		k.mu.Unlock()
		err := s.BeforeUp(l.Index)
		k.mu.Lock()
		if err != nil {
			n.links = slices.DeleteFunc(n.links, func(o link.Info) bool { return o.Index == l.Index })
			delete(n.addrs, l.Index)
			return err
		}
	}
	n.gateways = append(n.gateways, s.Gateways...) // the default routes come after up
	return nil
}

func (h *host) DetachEndpoint(_ context.Context, path, ifName string) error {
	h.k().RemoveNetnsLink(path, ifName)
	return nil
}

// SilenceEndpoint sets the endpoint's link (by index, else alias) down.
func (h *host) SilenceEndpoint(_ context.Context, path string, ifindex int, alias string) error {
	k := h.k()
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		for i := range n.links {
			if ifindex != 0 && n.links[i].Index == ifindex && n.links[i].Kind == "macvlan" || n.links[i].Alias == alias {
				n.links[i].Up = false
				return nil
			}
		}
	}
	return notFound(fmt.Sprintf("link %d (%s) in %s", ifindex, alias, path))
}

func (h *host) CreateHandoff(_ context.Context, s link.HandoffSpec) (string, error) {
	k := h.k()
	if _, ok := k.HostLink(s.Parent); !ok {
		return "", notFound("parent " + s.Parent)
	}
	l := k.AddHostLink(link.Info{Name: fmt.Sprintf("%s%d", link.TempPrefix, k.next+1), Kind: "macvlan", Alias: s.Alias, MAC: s.MAC})
	return l.Name, nil
}

// WatchLinks sends no events; it ends with the error BreakLinkWatch gives.
func (h *host) WatchLinks(ctx context.Context, _ func(link.LinkEvent)) error {
	k := h.k()
	k.mu.Lock()
	k.watches++
	k.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil
	case err := <-k.watchErr:
		return err
	}
}

// BreakLinkWatch ends the engine's link watch with err, as the kernel
// does when it drops events (ENOBUFS).
func (k *Kernel) BreakLinkWatch(err error) { k.watchErr <- err }

// LinkWatches is how many times an engine subscribed to link events.
func (k *Kernel) LinkWatches() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.watches
}

// WatchNetns: nothing happens in the in-memory kernel's namespaces.
func (h *host) WatchNetns(ctx context.Context, _ func(link.NetnsEvent)) error {
	<-ctx.Done()
	return nil
}

// NetnsID is the namespace's inode: unique, like the kernel's IDs.
func (h *host) NetnsID(path string) (int, error) {
	ino, err := (*namespaces)(h).Check(path)
	return int(ino), err
}

func (h *host) Close() error { return nil }

// namespaces is the Kernel as engine.Namespaces.
type namespaces Kernel

func (s *namespaces) Check(path string) (uint64, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return n.ino, nil
	}
	return 0, &os.PathError{Op: "open", Path: path, Err: os.ErrNotExist}
}

func (s *namespaces) Links(path string) ([]link.Info, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return slices.Clone(n.links), nil
	}
	return nil, notFound("netns " + path)
}

func (s *namespaces) SetMAC(path string, ifindex int, mac net.HardwareAddr) error {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nets[path]
	if n == nil {
		return notFound("netns " + path)
	}
	for i := range n.links {
		if n.links[i].Index == ifindex {
			n.links[i].MAC = slices.Clone(mac)
			return nil
		}
	}
	return notFound(fmt.Sprintf("link %d in %s", ifindex, path))
}

func (s *namespaces) Addrs(path string, ifindex int) ([]netip.Prefix, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return slices.Clone(n.addrs[ifindex]), nil
	}
	return nil, notFound("netns " + path)
}

func (s *namespaces) DefaultRoute(path string, gw netip.Addr) (bool, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return slices.Contains(n.gateways, gw), nil
	}
	return false, notFound("netns " + path)
}

func (s *namespaces) Mark(path string) (string, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return n.mark, nil
	}
	return "", notFound("netns " + path)
}

// Spare makes a namespace at a path of its own, as a file would reach it;
// a Gate at /run/netns/NAME holds the attach into it.
func (s *namespaces) Spare(name string) (engine.SpareNetns, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	path := fmt.Sprintf("/proc/self/fd/spare-%d", k.index())
	k.spareFor[path] = link.NetnsPath(name)
	return &spare{k: k, path: path, ns: k.addNetns(path, "")}, nil
}

// spare is an in-memory namespace with no name yet.
type spare struct {
	k    *Kernel
	path string
	ns   *netns
}

func (s *spare) Path() string   { return s.path }
func (s *spare) Cookie() uint64 { return s.ns.cookie }
func (s *spare) Inode() uint64  { return s.ns.ino }
func (s *spare) IPv6Off() bool  { return false }

// Mark marks the namespace.
func (s *spare) Mark(mark string) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	s.ns.mark = mark
	return nil
}

// Mount binds the namespace at /run/netns/NAME; it stays at Path too
// until Close, as a namespace is at /proc/self/fd/N while its file is
// open.
func (s *spare) Mount(name string) (string, error) {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	path := link.NetnsPath(name)
	if s.k.nets[path] != nil {
		return "", fmt.Errorf("netns %s: %w", name, link.ErrExists)
	}
	s.k.nets[path] = s.ns
	return path, nil
}

// Close lets the file go: the namespace is no longer at Path, and gone
// unless Mount named it.
func (s *spare) Close() error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	if s.k.nets[s.path] == s.ns {
		delete(s.k.nets, s.path)
	}
	return nil
}

func (s *namespaces) Delete(name string) error {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stuck[name] > 0 {
		k.stuck[name]--
		return fmt.Errorf("delete netns %s: unmount: %w", name, unix.EBUSY)
	}
	delete(k.nets, link.NetnsPath(name))
	return nil
}

func (s *namespaces) Cookie(path string) (uint64, error) {
	k := (*Kernel)(s)
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := k.nets[path]; n != nil {
		return n.cookie, nil
	}
	return 0, notFound("netns " + path)
}

// datapath is the Kernel as engine.Datapath: the endpoint table is kept,
// the rest accepted.
type datapath Kernel

func (d *datapath) SetParent(int, uint32, uint16) error                            { return nil }
func (d *datapath) AttachParent(context.Context, string, int, loader.Mode) error   { return nil }
func (d *datapath) DetachParent(context.Context, string, int) error                { return nil }
func (d *datapath) ForgetLink(int) error                                           { return nil }
func (d *datapath) DeleteParent(int) error                                         { return nil }
func (d *datapath) ForgetNetwork(uint32) error                                     { return nil }
func (d *datapath) SetRASource(uint32, loader.RASource) error                      { return nil }
func (d *datapath) AttachEndpoint(context.Context, string, int, loader.Mode) error { return nil }
func (d *datapath) AttachEndpointIn(context.Context, string, uint64, int, loader.Mode) error {
	return nil
}
func (d *datapath) AttachNewEndpoint(context.Context, string, uint64, int, loader.Mode) error {
	return nil
}
func (d *datapath) DetachEndpoint(context.Context, string, int) error       { return nil }
func (d *datapath) ForgetLingering() (int, error)                           { return 0, nil }
func (d *datapath) PruneOrphans() error                                     { return nil }
func (d *datapath) Parents() ([]loader.Parent, error)                       { return nil, nil }
func (d *datapath) PruneLinks() (int, error)                                { return 0, nil }
func (d *datapath) Attachments() []loader.Attachment                        { return nil }
func (d *datapath) Missing(string, int, loader.Mode) ([]loader.Hook, error) { return nil, nil }

// Path is the direct path: no stubs in memory either.
func (d *datapath) Path() loader.EndpointPath { return loader.PathDirect }
func (d *datapath) InspectEndpoint(context.Context, string, int) ([]loader.Finding, error) {
	return nil, nil // nothing tampers with the in-memory kernel
}
func (d *datapath) RepairEndpoint(context.Context, string, int, []loader.Finding) error { return nil }
func (d *datapath) ForeignPrograms() bool                                               { return false }
func (d *datapath) TCXTampered(context.Context, string, uint64, int) bool               { return false }
func (d *datapath) Close() error                                                        { return nil }

// NetnsNamed: the in-memory kernel records no paths.
func (d *datapath) NetnsNamed(uint64, int, string) {}

// AdoptEndpoint adopts nothing: the in-memory kernel has no programs, so
// every start attaches again.
func (d *datapath) AdoptEndpoint(context.Context, string, uint64, int) (loader.Mode, bool) {
	return "", false
}

func (d *datapath) SetEndpoint(ep loader.Endpoint) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.table[[2]uint64{ep.NetnsCookie, uint64(ep.Ifindex)}] = ep
	return nil
}

// MoveEndpoint sets the new row, then drops the old one: the MAC stays
// known throughout, as in loader.
func (d *datapath) MoveEndpoint(fromCookie uint64, fromIfindex int, ep loader.Endpoint) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.table[[2]uint64{ep.NetnsCookie, uint64(ep.Ifindex)}] = ep
	if fromCookie != ep.NetnsCookie || fromIfindex != ep.Ifindex {
		k.deleteRow(fromCookie, fromIfindex)
	}
	return nil
}

// ForgetEndpoint counts the forgetting of a link's programs (Forgets).
func (d *datapath) ForgetEndpoint(uint64, int) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.forgets++
	return nil
}

// Forgets says how many times the engine forgot a link's programs
// (ForgetEndpoint): once per removal whose link went.
func (k *Kernel) Forgets() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.forgets
}

func (d *datapath) DeleteEndpoint(cookie uint64, ifindex int) error {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deleteRow(cookie, ifindex)
	return nil
}

// deleteRow deletes a row and counts its MAC as forgotten if no other row
// has it. Caller holds mu.
func (k *Kernel) deleteRow(cookie uint64, ifindex int) {
	ep, ok := k.table[[2]uint64{cookie, uint64(ifindex)}]
	if !ok {
		return
	}
	delete(k.table, [2]uint64{cookie, uint64(ifindex)})
	if !k.knows(ep.MAC) {
		k.forgot[ep.MAC.String()]++
	}
}

// knows reports whether a row has mac. Caller holds mu.
func (k *Kernel) knows(mac net.HardwareAddr) bool {
	for _, ep := range k.table {
		if ep.MAC.String() == mac.String() {
			return true
		}
	}
	return false
}

// Sender reports whether the datapath knows mac (an endpoint's table row
// has it, so the other endpoints check its frames by its rules) and how
// many times it stopped knowing it.
func (k *Kernel) Sender(mac net.HardwareAddr) (known bool, forgotten int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.knows(mac), k.forgot[mac.String()]
}

func (d *datapath) Endpoints() ([]loader.Endpoint, error) {
	k := (*Kernel)(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]loader.Endpoint, 0, len(k.table))
	for _, ep := range k.table {
		out = append(out, ep)
	}
	return out, nil
}

// CountersInto has every counter at zero: nothing is sent through the
// in-memory kernel.
func (d *datapath) CountersInto(_ uint32, s *loader.Snapshot) error {
	s.Reset()
	return nil
}
