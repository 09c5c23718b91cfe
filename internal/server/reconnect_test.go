package server

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/outbox"
	"github.com/fleetwire/fleetwire/internal/state"
)

// cutProxy forwards TCP connections to a target and can cut the current
// one abruptly from either side: "server" closes the client-facing socket
// (the client sees the server vanish), "client" closes the server-facing
// socket (the server sees the client vanish).
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	pairs []*[2]net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut("both") })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			pair := &[2]net.Conn{c, s}
			p.mu.Lock()
			p.pairs = append(p.pairs, pair)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut(side string) {
	p.mu.Lock()
	pairs := p.pairs
	p.pairs = nil
	p.mu.Unlock()
	for _, pr := range pairs {
		switch side {
		case "server":
			pr[0].Close()
		case "client":
			pr[1].Close()
		default:
			pr[0].Close()
			pr[1].Close()
		}
	}
}

// TestReconnectExactlyOnce cuts the event connection over and over, from
// the server's side and from the client's, while a device reports, and
// checks that a client acknowledging with X-Fleetwire-Received gets every
// state exactly once, in order.
func TestReconnectExactlyOnce(t *testing.T) {
	reconnects := 1000
	if testing.Short() {
		reconnects = 100
	}
	// The queue bounds are raised so that a reconnect slowed down by a
	// loaded machine never makes the hub merge states (the documented
	// behaviour past the bounds, tested in package events): this test is
	// about the transport's exactly-once delivery.
	h := startServer(t, func(c *Config) {
		c.Events.SoftQueue = 1 << 20
		c.Events.Outbox = outbox.Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30}
	})
	uid := h.createUser("rio", "pw-rio-secret", "UTC")
	tr := h.createTracker(uid, "Courier", "dev-rio")
	hash := h.login("rio", "pw-rio-secret")
	proxy := newCutProxy(t, strings.TrimPrefix(h.base, "http://"))

	var (
		uuid     = "0"
		received uint64 // application messages received on this tracking id
		lastSeq  = 0
		dups     int
		gaps     int
		states   int
	)
	seqOf := func(lat float64) int { return int(math.Round(lat * 1e4)) }

	dial := func() (*websocket.Conn, error) {
		q := url.Values{}
		q.Set("X-Atmosphere-tracking-id", uuid)
		q.Set("X-Atmosphere-Framework", "2.3.8-javascript")
		q.Set("X-Atmosphere-Transport", "websocket")
		q.Set("X-atmo-protocol", "true")
		q.Set("X-Fleetwire-Received", strconv.FormatUint(received, 10))
		c, _, err := websocket.DefaultDialer.Dial("ws://"+proxy.ln.Addr().String()+"/v2/event/subscription?"+q.Encode(), nil)
		return c, err
	}
	// handle takes one frame; it reports whether it was an application
	// message.
	handle := func(data []byte) {
		s := strings.TrimSpace(string(data))
		if s == "" || s == "X" {
			return
		}
		if uuid == "0" {
			parts := strings.Split(s, "|")
			if len(parts) == 4 {
				uuid = parts[0]
				return
			}
		}
		received++
		var m struct {
			Type  string `json:"type"`
			Event string `json:"event"`
			Data  struct {
				GPS struct {
					Location *fleet.Location `json:"location"`
				} `json:"gps"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("not JSON: %q", data)
		}
		if m.Type != "event" || m.Event != "state" || m.Data.GPS.Location == nil {
			return
		}
		states++
		seq := seqOf(m.Data.GPS.Location.Lat)
		switch {
		case seq <= lastSeq:
			dups++
		case seq > lastSeq+1:
			gaps += seq - lastSeq - 1
		}
		if seq > lastSeq {
			lastSeq = seq
		}
	}

	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, hs, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	handle(hs)
	sub, _ := json.Marshal(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	if err := conn.WriteMessage(websocket.TextMessage, sub); err != nil {
		t.Fatal(err)
	}
	for received < 2 { // the response and the initial state
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		handle(data)
	}

	// The device reports continuously while the connection is cut.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var produced atomic.Int64
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		speed := 30.0
		for seq := 1; ctx.Err() == nil; seq++ {
			fix := &state.Fix{DeviceID: "dev-rio", Location: &fleet.Location{Lat: float64(seq) / 1e4, Lng: 13}, Speed: &speed}
			if _, err := h.srv.State.Apply(ctx, fix); err != nil {
				if ctx.Err() == nil {
					t.Errorf("apply: %v", err)
				}
				return
			}
			produced.Store(int64(seq))
			time.Sleep(200 * time.Microsecond)
		}
	}()

	cuts := 0
	for cuts < reconnects {
		// Read for a short random while, then cut.
		deadline := time.Now().Add(time.Duration(1+rand.IntN(4)) * time.Millisecond)
		_ = conn.SetReadDeadline(deadline)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				break
			}
			handle(data)
		}
		side := "server"
		if cuts%2 == 1 {
			side = "client"
		}
		proxy.cut(side)
		conn.Close()
		cuts++
		for attempt := 0; ; attempt++ {
			conn, err = dial()
			if err == nil {
				break
			}
			if attempt > 50 {
				t.Fatalf("reconnect %d: %v", cuts, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	cancel()
	<-prodDone
	last := int(produced.Load())
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for lastSeq < last {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d reconnects: waiting for state %d, got up to %d: %v", cuts, last, lastSeq, err)
		}
		handle(data)
	}
	t.Logf("%d reconnects, %d states produced, %d received, %d duplicated, %d lost", cuts, last, states, dups, gaps)
	if dups != 0 || gaps != 0 || states != last {
		t.Fatalf("%d reconnects: %d states produced, %d received, %d duplicated, %d lost", cuts, last, states, dups, gaps)
	}
}
