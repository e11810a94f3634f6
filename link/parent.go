package link

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// MaxNameLen is the longest link name Linux accepts (IFNAMSIZ-1).
const MaxNameLen = 15

// Parent is a parsed parent link name. Lower and VID are set only when Name
// has the NAME.VID form of an 802.1q sub-interface.
type Parent struct {
	Name  string
	Lower string
	VID   int
}

// IsVLAN reports whether p names an 802.1q sub-interface.
func (p Parent) IsVLAN() bool { return p.VID != 0 }

const vidHint = "use NAME.VID with VID 1-4094"

// ParseParent checks s as the value of -o parent=. The empty string (no
// parent: a host-only network) is the caller's business and is rejected here.
// A name containing a dot must be NAME.VID with a decimal VID in 1-4094.
func ParseParent(s string) (Parent, error) {
	if err := checkName("parent", s); err != nil {
		return Parent{}, err
	}
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return Parent{Name: s}, nil
	}
	lower, id := s[:i], s[i+1:]
	switch {
	case lower == "":
		return Parent{}, fmt.Errorf("parent %q has no link name before the dot; %s, such as eth0.50", s, vidHint)
	case lower == "lo":
		return Parent{}, fmt.Errorf("parent %q is on the loopback device; use an Ethernet link such as eth0.50", s)
	case id == "":
		return Parent{}, fmt.Errorf("parent %q has an empty VLAN id; %s", s, vidHint)
	}
	vid, err := parseVID(s, id)
	if err != nil {
		return Parent{}, err
	}
	return Parent{Name: s, Lower: lower, VID: vid}, nil
}

func parseVID(s, id string) (int, error) {
	for _, c := range id {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("VLAN id %q in parent %q is not a number; %s", id, s, vidHint)
		}
	}
	vid, err := strconv.Atoi(id)
	if err != nil || vid < 1 || vid > 4094 {
		return 0, fmt.Errorf("VLAN id %q in parent %q is out of range; use 1-4094", id, s)
	}
	if id[0] == '0' {
		return 0, fmt.Errorf("VLAN id %q in parent %q has a leading zero; use %s.%d",
			id, s, s[:len(s)-len(id)-1], vid)
	}
	return vid, nil
}

// checkName applies the kernel's rules for link names (dev_valid_name),
// refuses '%' (the kernel takes a new name with it as a template: eth%d
// becomes eth0, eth1, ..., so the link would not be found by the name
// given) and refuses the loopback device and the names the kernel keeps
// for its per-link settings of every link ("all", "default"). what names the value in errors
// ("parent").
func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s name is empty; use an Ethernet link such as eth0", what)
	case s == "lo":
		return fmt.Errorf("%s %q is the loopback device; use an Ethernet link such as eth0", what, s)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%s name %q is %d bytes; Linux link names are at most %d", what, s, len(s), MaxNameLen)
	case s == "." || s == "..":
		return fmt.Errorf("%s name %q is not a valid link name; use a name such as eth0", what, s)
	case s == "all" || s == "default":
		return fmt.Errorf("%s name %q is the kernel's own (net.*.conf.%s); use a name such as eth0", what, s, s)
	}
	for _, c := range s {
		if c == '/' || c == ':' || c == '%' || c == 0 || unicode.IsSpace(c) || unicode.IsControl(c) {
			return fmt.Errorf("%s name %q contains %q; link names cannot contain '/', ':', '%%', spaces or control characters", what, s, c)
		}
	}
	return nil
}

// CheckIfName validates a link name chosen by a user for an interface inside
// a container (--ifname).
func CheckIfName(s string) error { return checkName("interface", s) }

// CheckParentName validates the name of a parent link that may already
// exist under any name (foo, br.lan); the NAME.VID rules of ParseParent
// apply only to a parent mvlan is to create.
func CheckParentName(s string) error { return checkName("parent", s) }
