package cluster

// Liveness and fencing. Each host keeps hosts/HOST in etcd under a lease
// of TTL it renews every TTL/3. With each new lease it also puts
// epochs/HOST (no lease: it stays), in the same transaction, so that the
// key's mod revision names the host's latest lease. A host whose key is
// gone has been seen dead by the others since they first noticed it gone
// in that epoch; once that is longer than the grace, its blocks may be
// reclaimed (reclaim.go), which a transaction does only while its key is
// still absent and its epoch the same. An observer that missed a short
// return (a new lease that expired between two of its looks) thus starts
// its clock again, instead of counting the grace from before the return.
//
// Fence: a host may hand out addresses of the blocks it holds without
// asking etcd only until (time a renewal that succeeded was sent) + TTL +
// Grace/2. Its lease cannot expire before sent + TTL, and no other host
// reclaims before expiry + Grace, so a host cut off from etcd stops
// using its blocks Grace/2 before anyone may take them. The deadline is
// kept in Dir/alive.json, so that a restart cut off from etcd obeys it
// too. A host whose key was gone (a new lease) first puts its key, then
// checks every block it holds against etcd (verify): those etcd no
// longer has as its own are dropped, and only then is the deadline moved.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultTTL is the liveness lease's when Config names none.
const DefaultTTL = 10 * time.Second

// DefaultGrace is how long a host must have been seen dead before its
// blocks are reclaimed, when Config names none.
const DefaultGrace = 5 * time.Minute

func hostsDir() string            { return prefix + "hosts/" }
func hostKey(host string) string  { return hostsDir() + host }
func epochsDir() string           { return prefix + "epochs/" }
func epochKey(host string) string { return epochsDir() + host }

// deadMark is when an observer first found a host's key gone, in which
// of its epochs (the mod revision of epochs/HOST; 0: none yet).
type deadMark struct {
	since time.Time
	epoch int64
}

// liveness is a client's lease, its fence and what it saw of others.
type liveness struct {
	on         bool
	ttl, grace time.Duration
	file       string

	beatMu    sync.Mutex    // one beat at a time
	reach     reachLog      // what Live said of etcd (its goroutine's)
	epoch     atomic.Uint64 // leases taken (Client.Epoch)
	mu        sync.Mutex
	lease     clientv3.LeaseID
	verified  bool
	until     time.Time           // the fence: held blocks are used until then
	deadSince map[string]deadMark // hosts without a key, since first seen so
	pools     map[*Pool]bool      // to verify after a new lease
}

type aliveFile struct {
	Until time.Time `json:"until"`
}

func (l *liveness) init(cfg Config, log *slog.Logger) error {
	l.ttl, l.grace = cfg.TTL, cfg.Grace
	if l.ttl == 0 {
		l.ttl = DefaultTTL
	}
	if l.grace == 0 {
		l.grace = DefaultGrace
	}
	l.deadSince, l.pools = map[string]deadMark{}, map[*Pool]bool{}
	if cfg.Dir == "" {
		return nil
	}
	if l.ttl < 2*time.Second || l.grace < l.ttl {
		return fmt.Errorf("cluster lease TTL %v and grace %v: want a TTL of at least 2s and a grace of at least the TTL", l.ttl, l.grace)
	}
	l.on, l.file = true, filepath.Join(cfg.Dir, "alive.json")
	l.until = readFence(l.file, log)
	if max := time.Now().Add(l.ttl + l.grace/2); l.until.After(max) {
		// No renewal moves it further than that: the clock is behind
		// the one that wrote it (no RTC, a VM snapshot), or the file is
		// another's. Kept, the blocks would be used past their deadline.
		log.Warn("cluster liveness: the fence kept on disk is later than a renewal now could make it (the clock went back?); this host uses its blocks once etcd confirms them",
			"file", l.file, "until", l.until.UTC().Format(time.RFC3339), "latest", max.UTC().Format(time.RFC3339))
		l.until = time.Time{}
	}
	return nil
}

// readFence is the fence kept in file, or none (the zero time) when there
// is no file or it cannot be read: a write that a power loss tore (extend
// does not sync) must not keep the agent from starting, and no fence is
// the safe side (held blocks wait for etcd). The next beat writes it anew.
func readFence(file string, log *slog.Logger) time.Time {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}
	}
	var f aliveFile
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil {
		log.Warn("cluster liveness: the fence kept on disk is unreadable; this host uses its blocks once etcd confirms them", "file", file, "err", err)
		return time.Time{}
	}
	return f.Until.Round(0) // wall clock: it crossed a restart
}

// forget drops the fence and its file: none was earned by this
// installation.
func (l *liveness) forget() error {
	l.until = time.Time{}
	if !l.on {
		return nil
	}
	if err := os.Remove(l.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cluster liveness %s of another installation: %w", l.file, err)
	}
	return nil
}

// fence fails, wrapping ErrUnreachable, once the blocks this host holds
// may no longer be used without etcd confirming them.
func (c *Client) fence() error {
	if err := c.halted(); err != nil {
		return err
	}
	l := &c.live
	if !l.on {
		return nil
	}
	l.mu.Lock()
	until := l.until
	l.mu.Unlock()
	if time.Now().Before(until) {
		return nil
	}
	if until.IsZero() {
		return fmt.Errorf("%w: etcd at %s has not confirmed this host's liveness yet (no lease): its blocks are not used until etcd answers",
			ErrUnreachable, c.url)
	}
	return fmt.Errorf("%w: etcd at %s has not confirmed this host's blocks since %s (lease TTL %v + half the grace %v): another host may reclaim them, so they are not used until etcd answers",
		ErrUnreachable, c.url, until.Add(-l.ttl-l.grace/2).Format(time.RFC3339), l.ttl, l.grace)
}

// ready is fence, after one beat when the fence is down (a new agent
// before its first lease); the beat's failure says why. It must not be
// called holding a pool's etcdMu.
func (c *Client) ready(ctx context.Context) error {
	if c.fence() == nil {
		return nil
	}
	berr := c.beat(ctx)
	err := c.fence()
	if err != nil && berr != nil {
		return fmt.Errorf("%w; the renewal just tried: %v", err, berr)
	}
	return err
}

// Live keeps this host's liveness key in etcd and moves its fence, until
// ctx is done. Without Config.Dir it returns at once.
func (c *Client) Live(ctx context.Context) {
	if !c.live.on {
		return
	}
	t := time.NewTicker(c.live.ttl / 3)
	defer t.Stop()
	for {
		err := c.beat(ctx)
		if errors.Is(err, ErrIdentityClash) {
			return // halt logged it
		}
		if ctx.Err() == nil {
			c.live.reach.note(c.log, c.url, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beat renews the lease (or takes a new one, then verifies the blocks
// held) and moves the fence.
func (c *Client) beat(ctx context.Context) error {
	l := &c.live
	l.beatMu.Lock()
	defer l.beatMu.Unlock()
	if err := c.Register(ctx); err != nil { // before any key of this host's
		return err
	}
	sent := time.Now()
	l.mu.Lock()
	lease := l.lease
	l.mu.Unlock()
	if lease != 0 {
		var err error
		if lease, err = c.renew(ctx, lease); err != nil {
			return err
		}
	}
	if lease == 0 {
		var err error
		if lease, err = c.grant(ctx); err != nil {
			return err
		}
		l.mu.Lock()
		l.lease, l.verified = lease, false
		l.mu.Unlock()
		l.epoch.Add(1)
	}
	if err := c.verifyOnce(ctx); err != nil {
		return err
	}
	return c.extend(sent.Add(l.ttl + l.grace/2))
}

// renew renews lease and checks that this host's key is still under it:
// the key is what the other hosts take for this one alive (deadHosts), so
// a lease renewed without it (the key deleted, or put under a lease whose
// grant answered too late) would keep the fence up while they reclaim the
// blocks. 0 (take a new lease) when the lease or the key is gone.
func (c *Client) renew(ctx context.Context, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
	err := c.keepAlive(ctx, lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		c.log.Warn("cluster: this host's liveness lease expired; taking a new one and checking its blocks", "cluster", c.url)
		return 0, nil
	}
	if err != nil {
		return 0, c.failed("renew the liveness lease", err)
	}
	r, err := c.get(ctx, "check the liveness key", hostKey(c.host))
	if err != nil {
		return 0, err
	}
	if len(r.Kvs) == 0 || clientv3.LeaseID(r.Kvs[0].Lease) != lease {
		c.log.Warn("cluster: this host's liveness key is gone from etcd or under another lease; taking a new lease and checking its blocks",
			"cluster", c.url, "key", hostKey(c.host), "lease", fmt.Sprintf("%x", int64(lease)))
		return 0, nil
	}
	return lease, nil
}

func (c *Client) keepAlive(ctx context.Context, id clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	t0 := time.Now()
	_, err := c.cli.KeepAliveOnce(ctx, id)
	c.observe("keepalive", t0, err)
	return err
}

// grant takes a new lease and puts this host's key under it, with its
// new epoch.
func (c *Client) grant(ctx context.Context) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	t0 := time.Now()
	g, err := c.cli.Grant(ctx, int64((c.live.ttl+time.Second-1)/time.Second))
	c.observe("grant", t0, err)
	if err != nil {
		return 0, c.failed("liveness lease", err)
	}
	since := time.Now().UTC().Format(time.RFC3339)
	v, _ := json.Marshal(map[string]string{"since": since})
	ep, _ := json.Marshal(epochValue{Since: since, Lease: fmt.Sprintf("%x", int64(g.ID)), Grace: c.live.grace.String()})
	t0 = time.Now()
	_, err = c.cli.Txn(ctx).Then(clientv3.OpPut(hostKey(c.host), string(v), clientv3.WithLease(g.ID)),
		clientv3.OpPut(epochKey(c.host), string(ep))).Commit()
	c.observe("txn", t0, err)
	if err != nil {
		return 0, c.failed("liveness key", err)
	}
	return g.ID, nil
}

// verifyOnce checks every pool's blocks once per lease.
func (c *Client) verifyOnce(ctx context.Context) error {
	l := &c.live
	l.mu.Lock()
	done := l.verified
	pools := make([]*Pool, 0, len(l.pools))
	for p := range l.pools {
		pools = append(pools, p)
	}
	l.mu.Unlock()
	if done {
		return nil
	}
	for _, p := range pools {
		if err := p.verify(ctx); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.verified = true
	l.mu.Unlock()
	return nil
}

// extend moves the fence to until and keeps it on disk (a lost write
// only leaves an earlier deadline).
func (c *Client) extend(until time.Time) error {
	l := &c.live
	l.mu.Lock()
	l.until = until
	l.mu.Unlock()
	b, _ := json.Marshal(aliveFile{Until: until.UTC()})
	tmp := l.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.file)
}

// register makes p one of the pools verify checks; unregister forgets it.
func (c *Client) register(p *Pool) {
	c.live.mu.Lock()
	defer c.live.mu.Unlock()
	c.live.pools[p] = true
	c.live.verified = false // a pool opened from its file is checked too
}

func (c *Client) unregister(p *Pool) {
	c.live.mu.Lock()
	defer c.live.mu.Unlock()
	delete(c.live.pools, p)
}

// deadHosts returns which of hosts have had no liveness key for longer
// than the grace in their current epoch, as this client has seen it, each
// with that epoch (for the transaction that acts on it to compare): the
// clock starts when it first finds the key missing in an epoch.
func (c *Client) deadHosts(ctx context.Context, hosts map[string]bool) (map[string]int64, error) {
	r, err := c.txn(ctx, "list live hosts", nil, []clientv3.Op{
		clientv3.OpGet(hostsDir(), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(epochsDir(), clientv3.WithPrefix())}, nil)
	if err != nil {
		return nil, err
	}
	alive, epochs, graces := map[string]bool{}, map[string]int64{}, map[string]time.Duration{}
	for _, kv := range r.Responses[0].GetResponseRange().Kvs {
		alive[string(kv.Key)[len(hostsDir()):]] = true
	}
	for _, kv := range r.Responses[1].GetResponseRange().Kvs {
		h := string(kv.Key)[len(epochsDir()):]
		epochs[h], graces[h] = kv.ModRevision, graceOf(kv.Value)
	}
	l := &c.live
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	dead := map[string]int64{}
	for h := range hosts {
		if h == c.host || alive[h] {
			delete(l.deadSince, h)
			continue
		}
		grace := max(l.grace, graces[h]) // the host's fence counts its own
		m, ok := l.deadSince[h]
		if !ok || m.epoch != epochs[h] {
			l.deadSince[h] = deadMark{since: now, epoch: epochs[h]}
			c.log.Info("cluster: host has no liveness key; its blocks are reclaimed after the grace if none of their addresses answers", "host", h, "grace", grace)
			continue
		}
		if now.Sub(m.since) >= grace {
			dead[h] = m.epoch
		}
	}
	return dead, nil
}

// epochValue is the value of epochs/HOST: when the host's lease began,
// the lease, and the host's grace, which bounds its fence (TTL + grace/2
// past its last renewal): a host that reclaims its blocks waits the
// longer of that grace and its own, whatever --cluster-grace each runs.
type epochValue struct {
	Since string `json:"since"`
	Lease string `json:"lease"`
	Grace string `json:"grace,omitempty"`
}

// graceOf reads the grace of an epoch's value; 0 for one without (an
// agent from before it was written), or unreadable.
func graceOf(v []byte) time.Duration {
	var e epochValue
	if json.Unmarshal(v, &e) != nil {
		return 0
	}
	d, err := time.ParseDuration(e.Grace)
	if err != nil || d < 0 {
		return 0
	}
	return d
}

// stillDead are the comparisons of a transaction acting on dead host h:
// its liveness key still absent, its epoch still the one seen dead.
func stillDead(h string, epoch int64) []clientv3.Cmp {
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(hostKey(h)), "=", 0),
		clientv3.Compare(clientv3.ModRevision(epochKey(h)), "=", epoch)}
}
