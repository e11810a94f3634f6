package nstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Ping sends count ICMP echo requests from namespace ns to dst, one at a
// time, and returns an error unless every one is answered within timeout.
// It is a stand-in for ping(8), which is not installed everywhere; it uses
// a raw ICMP or ICMPv6 socket opened in ns.
func Ping(ns string, dst netip.Addr, count int, timeout time.Duration) error {
	fd, err := pingSocket(ns, dst)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	id := uint16(os.Getpid()) ^ uint16(time.Now().UnixNano())
	for seq := 1; seq <= count; seq++ {
		if err := pingOnce(fd, dst, id, uint16(seq), timeout); err != nil {
			return fmt.Errorf("ping %s from %s: echo %d of %d: %w", dst, ns, seq, count, err)
		}
	}
	return nil
}

// SendEchoes sends n ICMP echo requests from namespace ns to dst, from
// the address src (one of ns's: bound), each exactly once and without
// waiting for an answer, and returns what each send returned. With
// IP_RECVERR set, a request that a program on the link's egress dropped
// returns ENOBUFS (the kernel hides it otherwise). ping(8) instead sends
// a refused request again, as often as its timing allows, so the frames
// it sends are not its -c. dst must be a neighbour whose MAC ns knows:
// else the requests wait for an ARP or ND answer.
func SendEchoes(ns string, src, dst netip.Addr, n int) ([]error, error) {
	fd, err := pingSocket(ns, dst)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var from, to unix.Sockaddr = &unix.SockaddrInet4{Addr: src.As4()}, &unix.SockaddrInet4{Addr: dst.As4()}
	level, opt := unix.IPPROTO_IP, unix.IP_RECVERR
	if dst.Is6() {
		from, to = &unix.SockaddrInet6{Addr: src.As16()}, &unix.SockaddrInet6{Addr: dst.As16()}
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_RECVERR
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		return nil, fmt.Errorf("echo socket in %s: recverr: %w", ns, err)
	}
	if err := unix.Bind(fd, from); err != nil {
		return nil, fmt.Errorf("echo socket in %s: bind %s: %w", ns, src, err)
	}
	id := uint16(os.Getpid()) ^ uint16(time.Now().UnixNano())
	errs := make([]error, n)
	for i := range errs {
		errs[i] = unix.Sendto(fd, echoRequest(dst.Is6(), id, uint16(i+1)), 0, to)
	}
	return errs, nil
}

func pingSocket(ns string, dst netip.Addr) (fd int, err error) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if dst.Is6() {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	err = In(ns, func() error {
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("ping socket in %s: %w", ns, err)
	}
	return fd, nil
}

func pingOnce(fd int, dst netip.Addr, id, seq uint16, timeout time.Duration) error {
	req := echoRequest(dst.Is6(), id, seq)
	var sa unix.Sockaddr
	if dst.Is6() {
		sa = &unix.SockaddrInet6{Addr: dst.As16()}
	} else {
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	if err := unix.Sendto(fd, req, 0, sa); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return errors.New("no reply")
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if isEchoReply(buf[:n], dst, from, id, seq) {
			return nil
		}
	}
}

// echoRequest builds an ICMP(v6) echo request. For ICMPv6 the kernel fills
// in the checksum.
func echoRequest(v6 bool, id, seq uint16) []byte {
	typ := byte(8)
	if v6 {
		typ = 128
	}
	b := []byte{typ, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, seq)
	b = append(b, "mvlan-nstest-ping"...)
	if !v6 {
		binary.BigEndian.PutUint16(b[2:], Checksum(b))
	}
	return b
}

func isEchoReply(b []byte, dst netip.Addr, from unix.Sockaddr, id, seq uint16) bool {
	want := byte(129)
	switch sa := from.(type) {
	case *unix.SockaddrInet4:
		if netip.AddrFrom4(sa.Addr) != dst || len(b) < 20 {
			return false
		}
		b, want = b[int(b[0]&0x0f)*4:], 0 // raw IPv4 sockets deliver the IP header
	case *unix.SockaddrInet6:
		if netip.AddrFrom16(sa.Addr) != dst {
			return false
		}
	default:
		return false
	}
	return len(b) >= 8 && b[0] == want &&
		binary.BigEndian.Uint16(b[4:]) == id && binary.BigEndian.Uint16(b[6:]) == seq
}

// Checksum is the Internet checksum of b (RFC 1071), for the IPv4 header
// or, over a pseudo-header and the message, for ICMP, UDP and ICMPv6.
func Checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
