// Package engine is the one owner of mvlan's invariants: networks,
// endpoints, their address spaces (an ipam.Space per network), the links
// mvlan owns, the datapath attachments, the crash-safe order of every state
// transition, the reconcile on start, the drift check, the sweep of
// vanished namespaces and the reaction to link events.
//
// Front ends (the HTTP API, the Docker plugin) call its exported methods;
// they never see its locks, its store or its network structs. The store
// is the source of truth, read in full only by Start; requests are
// answered from an in-memory index (index.go). Every method takes the
// locks it needs itself (see Engine).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mvlan/mvlan/agent/store"
	"github.com/mvlan/mvlan/cluster"
	"github.com/mvlan/mvlan/ipam"
	"github.com/mvlan/mvlan/link"
	"github.com/mvlan/mvlan/loader"
)

// Config is what the engine needs to know of its host.
type Config struct {
	StateDir   string // bbolt state lives here (one agent per directory)
	BPFFS      string // bpffs directory for pinned objects
	AttachMode string // auto|tcx|tc
	// EndpointPrograms is how the endpoint programs find their endpoint:
	// auto|direct|stub (loader.EndpointPath; "" is auto).
	EndpointPrograms string
	HostNetns        string // namespace the agent manages; "" means its own
	// Recover rebuilds a corrupt state from its last good snapshot and
	// the endpoints the kernel holds (see openState, recoverEndpoints).
	Recover bool
	// TamperCheck is how often every endpoint's hooks and links are
	// inspected and repaired (tamper.go); 0 turns the check off
	// (mvlan agent's default is DefaultTamperCheck).
	TamperCheck time.Duration
	// Cluster joins the agent to an etcd cluster for networks of scope
	// cluster (engine/cluster.go); nil: none. Its Host is set to the
	// agent ID.
	Cluster *cluster.Config
	// Background runs work no request waits for (the drift counts of the
	// metrics) and returns when it is done; the agent runs it at a lower
	// priority. nil: as it comes.
	Background func(func())
	Log        *slog.Logger
}

// Engine is the state of one agent's networks and endpoints.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	store  *store.Store
	host   Host
	dp     Datapath
	ns     Namespaces
	modes  loader.Modes // per kind of link: see loader.ResolveModes
	tamper tamperCounts
	fresh  freshQueue // endpoints made ready, for the tamper check (guardfresh.go)
	macs   macClaims  // MACs of the attaches under way (macclaim.go)
	tombs  linkTombs  // the host's links its link events took away (gateways.go)
	// driftCounts are the last Check's counts, for the metrics.
	driftCounts driftCounts

	hostIno    uint64   // inode of the managed namespace, never a container's
	hostCookie uint64   // its netns cookie, in a handed-off link's keys (hostKeyed)
	pinLock    *os.File // the lock on cfg.BPFFS (loader.LockPinDir)

	// Locks, in the order they are taken: netOps, then an endpoint's
	// busy lock, then a network's shimMu, then its mu, then mu (macs'
	// is a leaf, taken inside a network's mu: macclaim.go). Only
	// netOps, busy and shimMu (one route sync, shim.go) are held across
	// kernel work; mu and a network's mu guard the index
	// and are held only to read or change it.
	netOps sync.Mutex   // serialises network create/remove, parent refreshes and Start
	mu     sync.RWMutex // guards nets (the map; see index.go)
	nets   map[string]*network

	removals removals // endpoint removals finishing in the background (remove.go)
	sweeper  sweeper  // the look for namespaces that went away (watch.go)
	// stateReplaced: this start moved a corrupt state aside (or restored
	// the snapshot); the endpoint table may hold rows of endpoints the
	// state no longer knows, whose links are left alone (pruneEndpointTable).
	stateReplaced bool
	// keptIDs: datapath numbers of networks the state may have lost
	// (stateReplaced, quarantined records) whose table rows are kept
	// (pruneDatapath): no new network is given one. Set at start.
	keptIDs map[uint32]bool

	cluster    *cluster.Client   // nil without Config.Cluster
	reclaimLog failureLog        // the cluster loop's reclaim failures (clusterlive.go)
	leases     keepers           // DHCP lease renewals (lease.go)
	shimDrift  map[string]string // repairShims' last look, by network ID (under netOps)
	// strayHeld are the addresses of live quarantined endpoint records
	// whose network is not in the state (settleQuarantined): no network
	// made since may have a subnet that holds one (checkUnique). Under
	// netOps.
	strayHeld []ipam.Held
}

// Open opens the state (taking its lock), the managed namespace and the
// BPF datapath. It changes nothing in the kernel's links; Start does.
func Open(cfg Config) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &Engine{cfg: cfg, log: cfg.Log, nets: map[string]*network{}, ns: kernelNamespaces{host: cfg.HostNetns}}
	var err error
	if a.store, a.stateReplaced, err = openState(cfg); err != nil {
		return nil, err
	}
	a.reportQuarantined()
	host, err := link.OpenHost(cfg.HostNetns)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open host namespace: %w", err), a.Close())
	}
	host.SetTag(a.store.AgentID())
	a.host = host
	if err := a.openCluster(); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	hostPath := cfg.HostNetns
	if hostPath == "" {
		hostPath = "/proc/self/ns/net"
	}
	if a.hostIno, err = link.CheckNetns(hostPath); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	if a.hostCookie, err = loader.NetnsCookie(hostPath); err != nil {
		return nil, errors.Join(err, a.Close())
	}
	if a.modes, err = loader.ResolveModes(cfg.AttachMode); err != nil {
		return nil, errors.Join(fmt.Errorf("--attach-mode %s: %w", cfg.AttachMode, err), a.Close())
	}
	if a.pinLock, err = loader.LockPinDir(cfg.BPFFS); err != nil {
		return nil, errors.Join(fmt.Errorf("--bpffs %s: %w; give this agent its own --bpffs (its state dir and socket are its own, but two agents on one bpffs dir would prune each other's endpoint tables)", cfg.BPFFS, err), a.Close())
	}
	path := loader.PathAuto
	if cfg.EndpointPrograms != "" {
		if path, err = loader.ParseEndpointPath(cfg.EndpointPrograms); err != nil {
			return nil, errors.Join(fmt.Errorf("--endpoint-programs: %w", err), a.Close())
		}
	}
	dp, err := loader.Load(context.Background(), cfg.BPFFS, path)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("load the BPF datapath under %s: %w (mvlan doctor tells what the kernel lacks)", cfg.BPFFS, err), a.Close())
	}
	a.dp = dp
	pool := link.NewNetnsPool(spareNamespaces, dp.PrepareNetns)
	if cfg.TamperCheck > 0 {
		// The check hears every namespace with an ID: each spare gets
		// its own as it is made (link/nsid.go).
		pool.GiveIDs(host)
	}
	a.ns = kernelNamespaces{pool: pool, host: cfg.HostNetns}
	if cfg.Recover {
		if err := a.recoverEndpoints(); err != nil {
			return nil, errors.Join(fmt.Errorf("recover endpoints from the kernel: %w", err), a.Close())
		}
	}
	return a, nil
}

// openCluster dials the cluster of cfg.Cluster, if any, as this agent:
// its ID is the host's identity there, its state dir keeps what the
// host must remember of the cluster.
func (a *Engine) openCluster() error {
	if a.cfg.Cluster == nil {
		return nil
	}
	cc := *a.cfg.Cluster
	cc.Host = a.store.AgentID()
	cc.Dir, cc.Log = filepath.Join(a.cfg.StateDir, "cluster"), a.cfg.Log
	if err := os.MkdirAll(cc.Dir, 0o700); err != nil {
		return err
	}
	c, err := cluster.Dial(cc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), registerTimeout)
	defer cancel()
	if err := c.Register(ctx); errors.Is(err, cluster.ErrIdentityClash) {
		return errors.Join(err, c.Close())
	}
	if q := a.quarantinedIDs(); a.stateReplaced || q.any() {
		c.KeepBlocks() // as leaveStrays keeps memberships
	}
	a.cluster = c // etcd not answering: the liveness loop registers
	return nil
}

// registerTimeout bounds the wait for etcd at start, to register the
// host's identity (cluster.Client.Register).
const registerTimeout = time.Second

// New returns an engine on st (an open store, which Close closes) and k,
// for tests of its decisions on an in-memory kernel (package enginetest);
// Open is the real thing. Call Start before serving. Only the cluster
// (cfg.Cluster, a real etcd) can fail it.
func New(cfg Config, st *store.Store, k Kernel) (*Engine, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if k.Modes.Live == "" {
		k.Modes.Live = k.Modes.Endpoint
	}
	a := &Engine{cfg: cfg, log: cfg.Log, store: st, host: k.Host, dp: k.Datapath, ns: k.Netns,
		modes: k.Modes, hostIno: k.HostIno, hostCookie: k.HostCookie, nets: map[string]*network{}}
	if err := a.openCluster(); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	return a, nil
}

// EndpointPrograms is how the endpoint programs find their endpoint:
// direct or stub (loader.EndpointPath).
func (a *Engine) EndpointPrograms() string { return a.dp.Path().String() }

// Close releases the state file, the datapath and namespace handles.
// Kernel objects stay: they belong to the networks and survive the agent.
func (a *Engine) Close() error {
	a.removals.wg.Wait()
	a.driftCounts.bg.stop()
	a.leases.stop()
	var errs []error
	if k, ok := a.ns.(kernelNamespaces); ok && k.pool != nil {
		errs = append(errs, k.pool.Close()) // before the datapath: what the spares hold of it goes
	}
	if a.dp != nil {
		errs = append(errs, a.dp.Close())
	}
	if a.pinLock != nil {
		errs = append(errs, a.pinLock.Close())
	}
	if a.host != nil {
		errs = append(errs, a.host.Close())
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if a.cluster != nil {
		errs = append(errs, a.cluster.Close())
	}
	return errors.Join(errs...)
}

// AgentID is the ID of this agent's state, the tag of its kernel objects.
func (a *Engine) AgentID() string { return a.store.AgentID() }

// Watch runs the engine's background work until ctx is done: the sweep of
// vanished namespaces, the reaction to link events on the parents, the
// tamper check and giving released cluster claims back to etcd. It returns once all of it has stopped, so that Close may
// follow.
func (a *Engine) Watch(ctx context.Context) {
	links := make(chan struct{})
	go func() {
		defer close(links)
		a.watchLinks(ctx)
	}()
	guard := make(chan struct{})
	go func() {
		defer close(guard)
		if a.cfg.TamperCheck > 0 {
			a.guard(ctx, a.cfg.TamperCheck)
		}
	}()
	shims := make(chan struct{})
	go func() {
		defer close(shims)
		every(ctx, shimCheckEvery, a.repairShims)
	}()
	syncs := make(chan struct{})
	go func() {
		defer close(syncs)
		if a.cluster != nil {
			live := make(chan struct{})
			go func() {
				defer close(live)
				a.runCluster(ctx)
			}()
			every(ctx, clusterSyncEvery, a.syncCluster)
			<-live
		}
	}()
	a.watch(ctx)
	<-links
	<-guard
	<-shims
	<-syncs
}
