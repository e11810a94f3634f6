package engine

import (
	"fmt"
	"net"
	"sync"
)

// macClaims are the MACs of the attaches under way (admitted, their
// datapath row not yet written or their attach not yet over). macOnHost
// reads the datapath's rows, which an attach writes once its link is
// made: two attaches with one MAC on two networks at once both passed
// it, and the second row took the first's place. A claim closes that
// window: an attach on another network whose MAC is claimed is refused
// as if the row were there. Its mutex is a leaf: taken inside a
// network's mu, around nothing else.
type macClaims struct {
	mu sync.Mutex
	by map[string]macClaim // by MAC
}

// macClaim is the attach that holds a MAC: its network and endpoint ID.
type macClaim struct{ network, owner string }

// claim takes mac for endpoint owner of network, unless an attach on
// another network has it. One of the same network takes it over: the
// network's own index (macInUse) refuses a second endpoint with the MAC,
// so the holder is one being undone, whose release then leaves the
// claim alone.
func (c *macClaims) claim(mac net.HardwareAddr, network, owner string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.by[string(mac)]; ok && o.network != network {
		return conflict(fmt.Errorf("MAC %s is being attached on another network of this host; MACs are unique on a host: choose another --mac", mac))
	}
	if c.by == nil {
		c.by = map[string]macClaim{}
	}
	c.by[string(mac)] = macClaim{network, owner}
	return nil
}

// release gives owner's claim of mac back (its attach is over: its row
// is written, or it was undone); another's claim stays.
func (c *macClaims) release(mac net.HardwareAddr, owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by[string(mac)].owner == owner {
		delete(c.by, string(mac))
	}
}

// claimOnHost is macOnHost with mac then claimed for e (released by the
// caller once e's attach is over): claimed first, so that no attach of
// another network writes its row and gives its claim back in between.
// Caller holds n.mu.
func (a *Engine) claimOnHost(n *network, e endpoint) error {
	if err := a.macs.claim(e.MAC, n.ID, e.ID); err != nil {
		return err
	}
	if err := a.macOnHost(n, e.MAC); err != nil {
		a.macs.release(e.MAC, e.ID)
		return err
	}
	return nil
}
