package cluster

// A host's identity in etcd is its agent ID. Two agents with one ID (a
// machine cloned with its state) would take each other's blocks for
// their own and hand out the same addresses, so each installation keeps
// a random token in Dir/install-id and registers it, create-if-absent,
// under identities/HOST: an agent that finds another token there does no
// cluster work. The file also records the machine it was made on
// (/etc/machine-id): a state dir copied to another machine gets a new
// token there, and so clashes with the original's registration.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrIdentityClash is wrapped by the errors of an agent whose ID another
// installation registered in etcd first.
var ErrIdentityClash = errors.New("host identity registered by another installation")

// InstallFile, in Config.Dir, keeps the installation's token.
const InstallFile = "install-id"

func identityKey(host string) string { return prefix + "identities/" + host }

// installFile is InstallFile's content.
type installFile struct {
	Token   string `json:"token"`
	Machine string `json:"machine,omitempty"`
}

// machineID is this machine's ID ("" if none is found).
func machineID() string {
	for _, f := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(f); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// readInstall returns the token of the installation whose cluster state
// is dir, made (and kept) the first time, and again on another machine;
// made says it made one.
func readInstall(dir string, log func(string, ...any)) (token string, made bool, err error) {
	file := filepath.Join(dir, InstallFile)
	var f installFile
	b, err := os.ReadFile(file)
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	switch {
	case err == nil && f.Token != "" && f.Machine == machineID():
		return f.Token, false, nil
	case err == nil && f.Token != "":
		log("cluster: this agent's state was made on another machine (its machine-id changed): it registers as a new installation", "file", file)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", false, fmt.Errorf("cluster install token %s: %w (delete it to make a new one)", file, err)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	f = installFile{Token: hex.EncodeToString(raw[:]), Machine: machineID()}
	b, _ = json.Marshal(f)
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", false, fmt.Errorf("cluster install token: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return "", false, fmt.Errorf("cluster install token: %w", err)
	}
	return f.Token, true, nil
}

// Register puts this installation's token under identities/HOST unless
// there is one; another installation's token there fails it, and every
// cluster request of the client from then on, with ErrIdentityClash. A
// client without Config.Dir does not register.
func (c *Client) Register(ctx context.Context) error {
	if c.install == "" || c.registered.Load() {
		return c.halted()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	key := identityKey(c.host)
	t0 := time.Now()
	r, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, c.install)).Else(clientv3.OpGet(key)).Commit()
	c.observe("txn", t0, err)
	if err != nil {
		return c.failed("register this host's identity", err)
	}
	if !r.Succeeded {
		if kvs := r.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || string(kvs[0].Value) != c.install {
			return c.halt(fmt.Errorf("%w: agent ID %s is registered in etcd at %s by another installation (%s is not the token of %s): two agents with one ID would hand out the same addresses, so this one does no cluster work. If this machine was cloned with the agent's state, stop the agent and move its state dir away to get a new agent ID; if it is the same installation and it lost %s, delete %s in etcd",
				ErrIdentityClash, c.host, c.url, InstallFile, key, InstallFile, key))
		}
	}
	c.registered.Store(true)
	return nil
}

// halt stops all cluster work of the client for good, with err.
func (c *Client) halt(err error) error {
	c.goneMu.Lock()
	defer c.goneMu.Unlock()
	if c.halting == nil {
		c.halting = err
		c.log.Error("cluster: " + err.Error())
	}
	return c.halting
}

// halted is the error halt stopped the client with; nil if none.
func (c *Client) halted() error {
	c.goneMu.Lock()
	defer c.goneMu.Unlock()
	return c.halting
}
