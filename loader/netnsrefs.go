package loader

import (
	"errors"
	"fmt"
)

// ep_netns holds the namespaces that have endpoints, by cookie
// (bpf/include/maps.h): the parent programs of the direct path take a
// frame sent by a socket of one of them for a container's, which must
// carry an endpoint's MAC of that namespace however it got past the
// container's own programs. The Datapath counts the endpoint table's rows
// per namespace (netnsRefs, guarded by tables) and writes the map when a
// count leaves or comes back to zero; Load counts them from the table.

// refNetns counts one more row of the namespace cookie.
func (d *Datapath) refNetns(cookie uint64) error {
	if d.netnsRefs[cookie] == 0 {
		if err := d.put("ep_netns", &cookie, uint8(1)); err != nil {
			return fmt.Errorf("set endpoint namespace %d: %w", cookie, err)
		}
	}
	d.netnsRefs[cookie]++
	return nil
}

// unrefNetns counts one row of the namespace cookie less.
func (d *Datapath) unrefNetns(cookie uint64) error {
	if d.netnsRefs[cookie] > 1 {
		d.netnsRefs[cookie]--
		return nil
	}
	delete(d.netnsRefs, cookie)
	if err := deleteKey(d.maps.EpNetns, &cookie); err != nil {
		return fmt.Errorf("delete endpoint namespace %d: %w", cookie, err)
	}
	return nil
}

// loadNetnsRefs counts the rows per namespace and makes ep_netns hold
// exactly their namespaces (a crash may have left it behind the table).
func (d *Datapath) loadNetnsRefs(rows map[epKey]epInfo) error {
	d.netnsRefs = map[uint64]int{}
	for k := range rows {
		d.netnsRefs[k.NetnsCookie]++
	}
	var stale []uint64
	if err := readEach(d.maps.EpNetns, func(cookie uint64, _ uint8) {
		if d.netnsRefs[cookie] == 0 {
			stale = append(stale, cookie)
		}
	}); err != nil {
		return fmt.Errorf("list endpoint namespaces: %w", err)
	}
	var errs []error
	for _, cookie := range stale {
		errs = append(errs, deleteKey(d.maps.EpNetns, &cookie))
	}
	for cookie := range d.netnsRefs {
		errs = append(errs, d.maps.EpNetns.Put(&cookie, uint8(1)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("load endpoint namespaces: %w", err)
	}
	return nil
}
