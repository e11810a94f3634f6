package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mvlan/mvlan/api"
	"github.com/mvlan/mvlan/internal/nstest"
	"golang.org/x/sys/unix"
)

// measureScrape fills the parent's per-VLAN counters for VIDs 1..4094 with
// tagged frames sent into the wire end of eth0, then times /metrics,
// fetched from inside the sandbox.
func (c *control) measureScrape(ctx context.Context, e *env, sb *sandbox) error {
	sc := newScraper(sb.host, "127.0.0.1:9469")
	defer sc.close()
	var others map[string]int // VLAN series of other parents, by parent
	count := func() (int, error) {
		body, _, err := sc.get(ctx)
		if err != nil {
			return 0, err
		}
		c.scrapeBytes = len(body)
		c.scrapeSeries, c.scrapeAttach, others = 0, 0, map[string]int{}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "mvlan_vlan_rx_packets_total{") {
				_, parent, _ := strings.Cut(line, `parent="`)
				parent, _, _ = strings.Cut(parent, `"`)
				if parent == "eth0" && !strings.Contains(line, `vlan="0"`) {
					c.scrapeSeries++
				} else {
					others[parent]++
				}
			}
			if strings.HasPrefix(line, "mvlan_attach_info{") {
				c.scrapeAttach++
			}
		}
		return c.scrapeSeries, nil
	}
	progress("control: tagged frames for VLANs 1-4094 into eth0")
	for try := 0; ; try++ {
		if err := sendVLANFrames(sb.wire, "wire0", 4094); err != nil {
			return err
		}
		got, err := count()
		if err != nil {
			return err
		}
		if got >= 4094 {
			break
		}
		if try == 3 {
			c.scrapeShort = fmt.Sprintf("only %d of VLANs 1-4094 on eth0 were counted after 4 rounds of frames; other VLAN series by parent: %v", got, others)
			progress("control: %s", c.scrapeShort)
			break
		}
	}
	for range max(e.cfg.reps, 10) {
		_, d, err := sc.get(ctx)
		if err != nil {
			return err
		}
		c.scrape = append(c.scrape, ms(d))
	}
	progress("control: scrape (%d VLAN series, %d attachments, %d KiB) p50 %.1f ms", c.scrapeSeries, c.scrapeAttach, c.scrapeBytes>>10, c.scrape.median())
	return nil
}

// sendVLANFrames sends one 802.1Q-tagged IPv4/UDP frame for each VID
// 1..vids out of link ifName in namespace ns (AF_PACKET), to a unicast MAC
// nobody has.
func sendVLANFrames(ns, ifName string, vids int) error {
	var fd, idx int
	err := nstest.In(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		idx = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("packet socket in %s: %w", ns, err)
	}
	defer unix.Close(fd)
	frame := make([]byte, 0, 64)
	frame = append(frame, 0x02, 0, 0x5e, 0, 0, 0x99) // dst
	frame = append(frame, 0x02, 0, 0, 0, 0, 0x01)    // src
	frame = append(frame, 0x81, 0x00, 0, 0)          // 802.1Q, VID set below
	frame = append(frame, 0x08, 0x00)                // IPv4
	ip := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 51, 100, 7, 198, 51, 100, 8}
	udp := []byte{0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0}
	frame = append(append(frame, ip...), udp...)
	for len(frame) < 64 {
		frame = append(frame, 0)
	}
	for vid := 1; vid <= vids; vid++ {
		binary.BigEndian.PutUint16(frame[14:], uint16(vid))
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: idx}); err != nil && !errors.Is(err, unix.ENOBUFS) {
			return fmt.Errorf("send VLAN %d frame: %w", vid, err)
		}
		if vid%256 == 0 {
			time.Sleep(time.Millisecond) // let the backlog drain
		}
	}
	return nil
}

// whileScraping times API attaches (each followed by a detach, so the
// count stays at N) in alternating blocks: with a scrape every 100 ms
// running in the background, and without. The ratio of the two p99s says
// whether a scrape holds up an attach.
func (c *control) whileScraping(ctx context.Context, e *env, a *agentProc, sb *sandbox) error {
	pairs, block := 1000, 50
	if e.cfg.quick {
		pairs, block = 40, 10
	}
	progress("control: %d attaches with and without a 10 Hz scrape, blocks of %d", pairs, block)
	var (
		mu      sync.Mutex
		on      bool
		scrapes int
		errc    = make(chan error, 1)
	)
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := newScraper(sb.host, "127.0.0.1:9469")
		defer sc.close()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			run := on
			mu.Unlock()
			if !run {
				continue
			}
			if _, _, err := sc.get(sctx); err != nil && sctx.Err() == nil {
				errc <- fmt.Errorf("scrape while attaching: %w", err)
				return
			}
			mu.Lock()
			scrapes++
			mu.Unlock()
		}
	}()
	err := func() error {
		for i := range pairs {
			scraping := (i/block)%2 == 0
			mu.Lock()
			on = scraping
			mu.Unlock()
			name := e.endpointName("s", i)
			t := time.Now()
			if _, err := a.api.CreateEndpoint(ctx, api.EndpointCreate{Network: "bench", Name: name}); err != nil {
				return fmt.Errorf("API attach while scraping: %w", err)
			}
			d := ms(time.Since(t))
			if scraping {
				c.attachScraping = append(c.attachScraping, d)
			} else {
				c.attachQuiet = append(c.attachQuiet, d)
			}
			if err := a.api.RemoveEndpoint(ctx, name, true); err != nil {
				return fmt.Errorf("API detach while scraping: %w", err)
			}
			select {
			case err := <-errc:
				return err
			default:
			}
		}
		return nil
	}()
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	if scrapes == 0 {
		return errors.New("no scrape completed while attaching: the ratio would compare nothing")
	}
	progress("control: attach p99 %.1f ms with %d scrapes running, %.1f ms without", c.attachScraping.pct(99), scrapes, c.attachQuiet.pct(99))
	return nil
}
