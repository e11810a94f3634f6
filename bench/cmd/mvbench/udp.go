package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

const (
	udpPort    = 5301
	udpPayload = 64 // bytes, as iperf3 -l 64
	udpBatch   = 64 // datagrams per sendmmsg / recvmmsg
)

// udpRate sends 64-byte UDP datagrams as fast as one thread can (sendmmsg)
// from the client namespace to a socket in the server namespace, read by
// another thread (recvmmsg). After warm it counts for dur and returns the
// datagrams per second received and sent.
func udpRate(ctx context.Context, p *dpPair, warm, dur time.Duration) (rx, tx float64, err error) {
	rfd, err := socketIn(p.server)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(rfd)
	sfd, err := socketIn(p.client)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(sfd)
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	if err := errors.Join(
		unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20),
		unix.SetsockoptTimeval(rfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv),
		unix.Bind(rfd, &unix.SockaddrInet4{Port: udpPort}),
		unix.Connect(sfd, &unix.SockaddrInet4{Port: udpPort, Addr: p.serverIP.As4()}),
	); err != nil {
		return 0, 0, fmt.Errorf("udp sockets: %w", err)
	}
	var stop atomic.Bool
	var rxN, txN atomic.Uint64
	var rxErr, txErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // never unlocked: the pinned thread exits with the goroutine
		pinThread(1)
		m := newMmsgs(udpBatch, 2048)
		for !stop.Load() {
			n, err := mmsg(unix.SYS_RECVMMSG, rfd, m.hdrs, unix.MSG_WAITFORONE)
			switch {
			case err == nil:
				rxN.Add(uint64(n))
			case err == unix.EAGAIN || err == unix.EINTR:
			default:
				rxErr = err
				return
			}
		}
		runtime.KeepAlive(m)
	}()
	go func() {
		defer wg.Done()
		runtime.LockOSThread() // never unlocked: the pinned thread exits with the goroutine
		pinThread(0)
		m := newMmsgs(udpBatch, udpPayload)
		for !stop.Load() {
			n, err := mmsg(unix.SYS_SENDMMSG, sfd, m.hdrs, 0)
			switch {
			case err == nil:
				txN.Add(uint64(n))
			case err == unix.ENOBUFS || err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNREFUSED:
			default:
				txErr = err
				return
			}
		}
		runtime.KeepAlive(m)
	}()
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	err = sleep(warm)
	r0, s0, t0 := rxN.Load(), txN.Load(), time.Now()
	if err == nil {
		err = sleep(dur)
	}
	r1, s1, el := rxN.Load(), txN.Load(), time.Since(t0).Seconds()
	stop.Store(true)
	wg.Wait()
	if err = errors.Join(err, rxErr, txErr); err != nil {
		return 0, 0, err
	}
	if r1 == r0 {
		return 0, 0, fmt.Errorf("udp: nothing received (%d sent)", s1-s0)
	}
	return float64(r1-r0) / el, float64(s1-s0) / el, nil
}

// pinThread keeps the calling (locked) thread on one CPU, cpu modulo the
// CPUs there are: the sender on one and the receiver on another, the same
// for every datapath, rather than wherever the scheduler puts them run by
// run (on 2 CPUs, both on one now and then). The sender's CPU also runs
// the softirq that delivers its frames (macvlan forwards through the
// backlog of the CPU that sent). The caller locks the thread and never
// unlocks it, so that it exits with its goroutine rather than run others
// pinned.
func pinThread(cpu int) {
	var set unix.CPUSet
	set.Set(cpu % runtime.NumCPU())
	_ = unix.SchedSetaffinity(0, &set)
}

// socketIn opens a UDP socket that belongs to the namespace at path.
func socketIn(path string) (int, error) {
	fd := -1
	err := nstest.In(path, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// mmsgs are the headers, vectors and buffers of a sendmmsg/recvmmsg batch.
type mmsgs struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
}

func newMmsgs(n, size int) *mmsgs {
	m := &mmsgs{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n), bufs: make([][]byte, n)}
	for i := range n {
		m.bufs[i] = make([]byte, size)
		m.iovs[i].Base = &m.bufs[i][0]
		m.iovs[i].SetLen(size)
		m.hdrs[i].Hdr.Iov = &m.iovs[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	return m
}

// mmsg is sendmmsg(2) or recvmmsg(2) (trap) on all of hdrs.
func mmsg(trap uintptr, fd int, hdrs []unix.Mmsghdr, flags int) (int, error) {
	n, _, errno := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
