// Package enginetest is an in-memory kernel for tests of the engine's
// decisions and of its front ends without root: host links, network
// namespaces with their links and addresses, and a datapath that records
// what it is told. It checks what the real kernel would refuse where the
// engine relies on it (a link name taken, a missing namespace), not more:
// the privileged end-to-end tests are the tests of the kernel side.
package enginetest

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

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
	forgot   map[string]int             // MAC -> times its last row went (the datapath stopped knowing it)
	gates    map[string]*Gate           // AttachEndpoint into these namespaces waits
	checks   map[string]*Gate           // Check of these namespaces waits
	spareFor map[string]string          // a spare's path -> the /run/netns path it is for
	routes   map[string][]netip.Addr    // host shim routes, by link name
	syncs    int                        // SetShimRoutes calls (whole-shim syncs)
	stuck    map[string]int             // /run/netns names whose next deletes fail
	going    map[string]time.Time       // MAC -> until when the parent refuses it (RenewNetns)
	forgets  int                        // ForgetEndpoint calls
	full     bool                       // the endpoint table takes no row (FullTable)
	watches  int                        // WatchLinks calls
	watchErr chan error                 // ends the link watch under way (BreakLinkWatch)
	delFails map[string]int             // host links whose next deletes fail (StickHostLink)
	shimFail int                        // host shim rows whose next writes fail (FailShimRow)
	gateways map[uint32]loader.Gateways // pinned, by network (SetGateways)
	parents  map[int]loader.Parent      // the parents table, by ifindex (SetParent)
	retired  []int                      // RetireParent's ifindexes, in order
	announce []netip.Prefix             // addresses AnnounceEndpoint announced, in order

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
func (k *Kernel) Gate(path string) *Gate { return k.hold(k.gates, path) }

// GateCheck makes the next Check of the namespace at path wait at the
// returned gate: an attach to that namespace, held after its endpoint is
// named and before it is admitted.
func (k *Kernel) GateCheck(path string) *Gate { return k.hold(k.checks, path) }

// hold puts a new gate for path in gates.
func (k *Kernel) hold(gates map[string]*Gate, path string) *Gate {
	k.mu.Lock()
	defer k.mu.Unlock()
	g := &Gate{Entered: make(chan struct{}), open: make(chan struct{})}
	gates[path] = g
	return g
}

// pass waits at the gate of gates[path], if any, and removes it.
func (k *Kernel) pass(gates map[string]*Gate, path string) {
	k.mu.Lock()
	g := gates[path]
	delete(gates, path)
	k.mu.Unlock()
	if g != nil {
		close(g.Entered)
		<-g.open
	}
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
		table: map[[2]uint64]loader.Endpoint{}, forgot: map[string]int{}, gates: map[string]*Gate{}, checks: map[string]*Gate{}, spareFor: map[string]string{},
		going:    map[string]time.Time{},
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
		Modes: loader.Modes{Parent: loader.ModeTCX, Endpoint: loader.ModeTC}, HostIno: 1, HostCookie: 1})
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

// RenewNetns makes the namespace at path vanish, with its links, and a
// new one at newPath with its inode number (and a cookie of its own): the
// kernel gives the number of a namespace that is gone to the next one.
// The parent refuses the MACs of the links for linger (a namespace the
// kernel destroys in the background): AttachEndpoint fails to set a link
// with one up (EADDRINUSE) unless its MACBusyWait outlasts that.
func (k *Kernel) RenewNetns(path, newPath string, linger time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.nets[path]
	delete(k.nets, path)
	n := k.addNetns(newPath, "")
	if old == nil {
		return
	}
	n.ino = old.ino
	for _, l := range old.links {
		k.going[l.MAC.String()] = time.Now().Add(linger)
	}
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

// AddNetnsLink adds l to the namespace at path (its index if 0 is made
// up): a link someone else made there (the container).
func (k *Kernel) AddNetnsLink(path string, l link.Info) (link.Info, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nets[path]
	if n == nil {
		return l, notFound("netns " + path)
	}
	if l.Index == 0 {
		l.Index = k.index()
	}
	n.links = append(n.links, l)
	return l, nil
}

// MoveHostLink moves host link name into the namespace at path as
// newName, up, with addrs: what Docker does with a handed-off link. As
// the kernel's move, it keeps its index unless a link there has it; then
// it gets a new one.
func (k *Kernel) MoveHostLink(name, path, newName string, addrs []netip.Prefix) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.host[name]
	n := k.nets[path]
	if !ok || n == nil {
		return fmt.Errorf("move %s to %s: %w", name, path, link.ErrNotFound)
	}
	delete(k.host, name)
	if slices.ContainsFunc(n.links, func(o link.Info) bool { return o.Index == l.Index }) {
		l.Index = k.index()
	}
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

// HasRow reports whether the endpoint table has a row under the keys
// (netns cookie, ifindex), as an endpoint records them.
func (k *Kernel) HasRow(cookie uint64, ifindex int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.table[[2]uint64{cookie, uint64(ifindex)}]
	return ok
}

// TableRow is the datapath's row under (path's namespace, ifindex).
func (k *Kernel) TableRow(path string, ifindex int) (loader.Endpoint, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.nets[path]
	if n == nil {
		return loader.Endpoint{}, false
	}
	ep, ok := k.table[[2]uint64{n.cookie, uint64(ifindex)}]
	return ep, ok
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, link.ErrNotFound) }
