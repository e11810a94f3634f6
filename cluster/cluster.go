// Package cluster shares the address pools of networks that span hosts
// through etcd: each host (an mvlan agent, named by its agent ID) leases
// blocks of a pool with create-if-absent transactions and hands out the
// addresses inside its blocks locally (package ipam), so that a dynamic
// address costs no etcd round trip once a block is held. Exact addresses
// (--ip) are claimed with their own create-if-absent transaction, refused
// when they fall in another host's block.
//
// Keys, under /mvlan/v1/ (addresses as 32 hex digits of their 16-byte
// form, so that etcd's key order is address order):
//
//	blocks/NET/FIRST-BITS  value: the holding host's ID
//	claims/NET/ADDR        value: the claiming host's ID
//
// and, of hosts: hosts/HOST (under the host's lease) and epochs/HOST (its
// latest lease; no lease of its own) (liveness.go), identities/HOST (the
// token of the installation that has the ID: identity.go).
//
// A host keeps the blocks and claims it holds in a local file, so that a
// restart needs etcd for nothing its running endpoints have.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnreachable is wrapped by errors of requests etcd did not answer.
var ErrUnreachable = errors.New("cluster unreachable")

// ErrRefused is wrapped by errors of requests etcd answered with an error
// of its own: no permission, its space quota reached, a request too large.
// Trying again changes nothing until its operator acts.
var ErrRefused = errors.New("refused by the cluster")

// prefix starts every key mvlan writes.
const prefix = "/mvlan/v1/"

// Config is how a host joins the cluster.
type Config struct {
	URL     string // etcd://HOST:PORT[,HOST:PORT...]
	CA      string // PEM file; with Cert and Key: TLS to etcd
	Cert    string
	Key     string
	Host    string        // this host's identity (the agent ID)
	Timeout time.Duration // of each request; 0: 3 s
	// Dir keeps what the host must remember of its liveness (liveness.go);
	// empty: no liveness, no fencing (the blocks held are used whenever).
	Dir   string
	TTL   time.Duration // of the liveness lease; 0: DefaultTTL
	Grace time.Duration // a dead host's blocks wait this long; 0: DefaultGrace
	// DAD is how long an attach waits for answers to its duplicate
	// address probe (engine); 0: no probe.
	DAD time.Duration
	Log *slog.Logger
}

// Client is a host's connection to the cluster.
type Client struct {
	cli     *clientv3.Client
	url     string
	host    string
	timeout time.Duration
	log     *slog.Logger
	m       *metrics
	live    liveness

	install    string      // this installation's token (identity.go); "": none
	registered atomic.Bool // the token is in etcd

	goneMu  sync.Mutex
	gone    map[string]error // networks etcd no longer defines as they are (guard.go)
	halting error            // no cluster work at all (identity.go)

	// keepBlocks: the host's state may not know every endpoint (KeepBlocks).
	keepBlocks atomic.Bool

	// listed, if set, runs in deleteMine between its list and its
	// deletes (tests).
	listed func()
}

// ParseURL returns the endpoints of an etcd://HOST:PORT[,HOST:PORT...]
// URL, each as HOST:PORT.
func ParseURL(u string) ([]string, error) {
	rest, ok := strings.CutPrefix(u, "etcd://")
	if !ok || rest == "" {
		return nil, fmt.Errorf("--cluster %q: want etcd://HOST:PORT[,HOST:PORT...] (e.g. etcd://10.0.0.1:2379)", u)
	}
	var eps []string
	for _, hp := range strings.Split(rest, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" || strings.ContainsAny(hp, "/?#@") {
			return nil, fmt.Errorf("--cluster %q: %q is not HOST:PORT (e.g. 10.0.0.1:2379)", u, hp)
		}
		eps = append(eps, hp)
	}
	return eps, nil
}

// Dial connects to the cluster. It does not wait for etcd to answer:
// requests do, each within cfg.Timeout.
func Dial(cfg Config) (*Client, error) {
	eps, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		return nil, errors.New("cluster: a host identity is required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	scheme := "http://"
	if tc != nil {
		scheme = "https://"
	}
	log := logger(cfg, tc != nil)
	for i := range eps {
		eps[i] = scheme + eps[i]
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc, DialTimeout: cfg.Timeout,
		Logger: zap.NewNop(), AutoSyncInterval: 0})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cfg.URL, err)
	}
	c := &Client{cli: cli, url: cfg.URL, host: cfg.Host, timeout: cfg.Timeout, log: log, m: newMetrics(),
		gone: map[string]error{}}
	if err := c.live.init(cfg, log); err != nil {
		return nil, errors.Join(err, cli.Close())
	}
	if cfg.Dir != "" {
		var made bool
		if c.install, made, err = readInstall(cfg.Dir, c.log.Warn); err != nil {
			return nil, errors.Join(err, cli.Close())
		}
		if made {
			// A new installation (a state copied from another machine, say)
			// has earned no fence: the alive.json it found is another's,
			// and goes, so that a restart does not take it up again.
			if err := c.live.forget(); err != nil {
				return nil, errors.Join(err, cli.Close())
			}
		}
	}
	return c, nil
}

// logger is cfg.Log, or the default; it warns of an etcd reached without
// TLS.
func logger(cfg Config, tls bool) *slog.Logger {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if !tls {
		log.Warn("cluster: etcd is reached over plain http, without TLS: anyone on the path can read and change the address pools; give --cluster-ca, --cluster-cert and --cluster-key", "cluster", cfg.URL)
	}
	return log
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.CA == "" && cfg.Cert == "" && cfg.Key == "" {
		return nil, nil
	}
	if cfg.CA == "" || cfg.Cert == "" || cfg.Key == "" {
		return nil, errors.New("--cluster-ca, --cluster-cert and --cluster-key go together; give all three for TLS, or none")
	}
	pem, err := os.ReadFile(cfg.CA)
	if err != nil {
		return nil, fmt.Errorf("--cluster-ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--cluster-ca %s: no PEM certificate in it", cfg.CA)
	}
	cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("--cluster-cert %s / --cluster-key %s: %w", cfg.Cert, cfg.Key, err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cli.Close() }

// Host is this host's identity in the cluster.
func (c *Client) Host() string { return c.host }

// URL is the cluster's URL, as errors name it.
func (c *Client) URL() string { return c.url }

// txn runs one transaction within the client's timeout; an error is
// etcd not answering, wrapped with ErrUnreachable and the cluster's URL.
func (c *Client) txn(ctx context.Context, what string, cmp []clientv3.Cmp, then, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if err := c.halted(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	t0 := time.Now()
	r, err := c.cli.Txn(ctx).If(cmp...).Then(then...).Else(els...).Commit()
	c.observe("txn", t0, err)
	if err != nil {
		return nil, c.failed(what, err)
	}
	return r, nil
}

func (c *Client) get(ctx context.Context, what, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	t0 := time.Now()
	r, err := c.cli.Get(ctx, key, opts...)
	c.observe("get", t0, err)
	if err != nil {
		return nil, c.failed(what, err)
	}
	return r, nil
}

// failed is the error of request what that etcd failed with err:
// ErrRefused when etcd answered it with an error of its own, else
// ErrUnreachable (no answer, or one that says to try again: no leader, a
// timeout); either names the cluster.
func (c *Client) failed(what string, err error) error {
	if refused(err) {
		return fmt.Errorf("%s: %w: etcd at %s: %w", what, ErrRefused, c.url, err)
	}
	return fmt.Errorf("%s: %w: etcd at %s did not answer: %v", what, ErrUnreachable, c.url, err)
}

// refused reports whether err is an error etcd answered that trying again
// does not cure: not an overload or a leader change.
func refused(err error) bool {
	if errors.Is(err, rpctypes.ErrTooManyRequests) || errors.Is(err, rpctypes.ErrNotLeader) {
		return false
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	}
	switch code {
	case codes.OK, codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
		return false
	}
	return true
}
