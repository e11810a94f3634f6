package engine

import (
	"fmt"
	"net"
	"sync"
)

// macClaims are the MACs of the attaches under way (admitted, their
// datapath row not yet written or their attach not yet over), by
// network ID. macOnHost reads the datapath's rows, which an attach writes
// once its link is made: two attaches with one MAC on two networks at
// once both passed it, and the second row took the first's place. A
// claim closes that window: an attach on another network whose MAC is
// claimed is refused as if the row were there.
type macClaims struct {
	mu sync.Mutex
	by map[string]string // MAC -> the claiming attach's network ID
}

// claim takes mac for network, unless an attach on another network has
// it. Caller holds network's mu (one claim per MAC and network: macInUse
// refuses a second).
func (c *macClaims) claim(mac net.HardwareAddr, network string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if other, ok := c.by[string(mac)]; ok && other != network {
		return conflict(fmt.Errorf("MAC %s is being attached on another network of this host; MACs are unique on a host: choose another --mac", mac))
	}
	if c.by == nil {
		c.by = map[string]string{}
	}
	c.by[string(mac)] = network
	return nil
}

// release gives network's claim of mac back (the attach is over: its
// row is written, or it was undone).
func (c *macClaims) release(mac net.HardwareAddr, network string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by[string(mac)] == network {
		delete(c.by, string(mac))
	}
}
