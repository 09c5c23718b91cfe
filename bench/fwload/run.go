package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// system is one server under test.
type system interface {
	Name() string
	MetricsURL() string
	Setup(ctx context.Context) error
	Connect(ctx context.Context, c *client, d *websocket.Dialer) error
	Handle(c *client, frame []byte)
	Ingest(ctx context.Context, tracker int, lat float64) error
}

// Phases of a run; deliveries are attributed to the phase they arrive in.
const (
	phaseSetup int32 = iota
	phaseIngest
	phaseDrain
)

// Stats is what every connection and the ingest driver add to.
type Stats struct {
	log   *SendLog
	phase atomic.Int32

	established, handshakeErrs, readErrs atomic.Int64
	frames                               atomic.Int64 // WebSocket data frames during ingest, whatever they carry
	messages, entries                    atomic.Int64 // state messages and states during ingest
	compressed                           atomic.Int64 // connections that negotiated permessage-deflate
	drainEntries                         atomic.Int64 // states after ingest stopped
	setupEntries                         atomic.Int64 // states before ingest (current states on subscribe)
	matched                              atomic.Int64 // states matched to an update of this run
	unmatched                            atomic.Int64 // states during ingest that were not (repeats of older states)
	heartbeats, otherEvents, errorFrames atomic.Int64

	ingestSent, ingestErrs, ingestSkipped atomic.Int64
	expected                              atomic.Int64 // deliveries the sent updates should cause

	latency Histogram

	stopping atomic.Bool // connections are being closed on purpose

	errMu    sync.Mutex
	firstErr []string
}

func (s *Stats) noteError(format string, args ...any) {
	if s.stopping.Load() {
		return
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if len(s.firstErr) < 5 {
		s.firstErr = append(s.firstErr, fmt.Sprintf(format, args...))
	}
}

// countStates accounts for one message that carries states (a frame of
// fleetwire, a push of Centrifugo, which may put several in one frame).
func (s *Stats) countStates(frame []byte) {
	ph := s.phase.Load()
	now := time.Now().UnixNano()
	var matched int64
	n := scanStates(frame, func(lat float64) {
		if ph == phaseSetup {
			return
		}
		if at, ok := s.log.SentAt(lat); ok && at <= now {
			matched++
			s.latency.Record(time.Duration(now - at))
		}
	})
	switch ph {
	case phaseSetup:
		s.setupEntries.Add(int64(n))
		return
	case phaseIngest:
		s.messages.Add(1)
		s.entries.Add(int64(n))
	default:
		s.drainEntries.Add(int64(n))
	}
	s.matched.Add(matched)
	if d := int64(n) - matched; d > 0 {
		s.unmatched.Add(d)
	}
}

// client is one load connection.
type client struct {
	id    int
	ws    *websocket.Conn
	stats *Stats
}

// read returns the next frame in a pooled buffer that stays valid until the
// next read.
func (c *client) read() ([]byte, error) {
	_, r, err := c.ws.NextReader()
	if err != nil {
		return nil, err
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	_, err = buf.ReadFrom(r)
	b := buf.Bytes()
	bufPool.Put(buf)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// readLoop handles frames until the connection ends.
func (c *client) readLoop(sys system) {
	for {
		frame, err := c.read()
		if err != nil {
			if !c.stats.stopping.Load() {
				c.stats.readErrs.Add(1)
				c.stats.noteError("conn %d: %v", c.id, err)
			}
			return
		}
		if c.stats.phase.Load() == phaseIngest {
			c.stats.frames.Add(1)
		}
		sys.Handle(c, frame)
	}
}

// connectAll opens cfg.Conns connections with a bounded number of dials in
// flight and starts a reader for each.
func connectAll(ctx context.Context, cfg *Config, sys system, st *Stats, wg *sync.WaitGroup) []*client {
	ds := newDialers(cfg.SourceIPs, cfg.Compress)
	clients := make([]*client, cfg.Conns)
	next := atomic.Int64{}
	var dialWG sync.WaitGroup
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-progress.C:
				logf("connecting: %d up, %d failed", st.established.Load(), st.handshakeErrs.Load())
			case <-done:
				return
			}
		}
	}()
	for w := 0; w < cfg.DialConcurrency; w++ {
		dialWG.Add(1)
		go func() {
			defer dialWG.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns || ctx.Err() != nil {
					return
				}
				c := &client{id: i, stats: st}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := sys.Connect(cctx, c, ds.For(i))
				cancel()
				if err != nil {
					st.handshakeErrs.Add(1)
					st.noteError("connect %d: %v", i, err)
					if c.ws != nil {
						c.ws.Close()
					}
					continue
				}
				st.established.Add(1)
				clients[i] = c
				wg.Add(1)
				go func() { defer wg.Done(); c.readLoop(sys) }()
			}
		}()
	}
	dialWG.Wait()
	close(done)
	return clients
}

// drive sends updates at cfg.Rate per second, round robin over the
// trackers, until ctx ends. A pacer hands out work to a fixed pool of
// senders; when they cannot keep up the pacer skips and counts it rather
// than bursting later.
func drive(ctx context.Context, cfg *Config, sys system, st *Stats, subscribers []int64) {
	// A short queue, so that a server that cannot take the rate shows up as
	// skipped updates rather than as a backlog in this process.
	jobs := make(chan int, cfg.IngestWorkers)
	var wg sync.WaitGroup
	for w := 0; w < cfg.IngestWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range jobs {
				if ctx.Err() != nil {
					continue // the run is over: drop what is queued
				}
				seq, lat := st.log.Next(time.Now())
				// A request under way when the run ends is finished, not
				// cancelled: the server may already have taken it, and its
				// deliveries must match a sent update.
				if err := sys.Ingest(context.WithoutCancel(ctx), t, lat); err != nil {
					st.log.Forget(seq)
					st.ingestErrs.Add(1)
					st.noteError("ingest: %v", err)
					continue
				}
				st.ingestSent.Add(1)
				st.expected.Add(subscribers[t])
			}
		}()
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var issued int64
	tracker := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			due := int64(now.Sub(start).Seconds()*cfg.Rate) - issued
			for ; due > 0; due-- {
				issued++
				select {
				case jobs <- tracker:
				default:
					st.ingestSkipped.Add(1)
				}
				tracker = (tracker + 1) % cfg.Trackers
			}
		}
	}
	close(jobs)
	wg.Wait()
}

func closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil && c.ws != nil {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			c.ws.Close()
		}
	}
}

var logOut io.Writer

func logf(format string, args ...any) {
	if logOut != nil {
		fmt.Fprintf(logOut, "fwload: "+format+"\n", args...)
	}
}
