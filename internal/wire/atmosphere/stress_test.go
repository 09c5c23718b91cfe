package atmosphere

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// cutProxy forwards TCP connections and cuts them from either side.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	pairs [][2]net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
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
			p.mu.Lock()
			p.pairs = append(p.pairs, [2]net.Conn{c, s})
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut(2); p.wg.Wait() })
	return p
}

// cut closes the client-facing (0), server-facing (1) or both (2) sides.
func (p *cutProxy) cut(side int) {
	p.mu.Lock()
	pairs := p.pairs
	p.pairs = nil
	p.mu.Unlock()
	for _, pr := range pairs {
		if side == 0 || side == 2 {
			pr[0].Close()
		}
		if side == 1 || side == 2 {
			pr[1].Close()
		}
	}
}

// TestReconnectStorm cuts a WebSocket hundreds of times, from both sides,
// through a proxy, while the application pushes continuously; the
// acknowledging client must see every message exactly once.
func TestReconnectStorm(t *testing.T) {
	reconnects := 300
	if testing.Short() {
		reconnects = 60
	}
	e := newEnv(t, Options{})
	proxy := newCutProxy(t, strings.TrimPrefix(e.ts.URL, "http://"))
	id, received := "0", 0
	dial := func() (*websocket.Conn, error) {
		u := "ws://" + proxy.ln.Addr().String() + "/event/subscription?" + strings.SplitN(e.url(
			hTrackingID, id, hTransport, "websocket", hProtocol, "true", hFramework, "2.3.8-javascript",
			hReceived, strconv.Itoa(received)), "?", 2)[1]
		c, _, err := websocket.DefaultDialer.Dial(u, nil)
		return c, err
	}
	var got []string
	handle := func(b []byte) {
		s := strings.TrimSpace(string(b))
		if s == "" || s == "X" {
			return
		}
		if id == "0" {
			id = splitHandshake(t, s, "0")
			return
		}
		received++
		got = append(got, s)
	}
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, hs, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	handle(hs)
	s := e.h.session(id)

	ctx, cancel := context.WithCancel(context.Background())
	var produced int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ctx.Err() == nil; i++ {
			if err := s.q.Push([]byte(fmt.Sprintf("m%d", i))); err != nil {
				t.Errorf("push: %v", err)
				return
			}
			produced = i
			time.Sleep(100 * time.Microsecond)
		}
	}()
	for cuts := 0; cuts < reconnects; cuts++ {
		_ = conn.SetReadDeadline(time.Now().Add(time.Duration(1+rand.IntN(4)) * time.Millisecond))
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				break
			}
			handle(b)
		}
		proxy.cut(cuts % 2)
		conn.Close()
		for attempt := 0; ; attempt++ {
			if conn, err = dial(); err == nil {
				break
			}
			if attempt > 50 {
				t.Fatalf("reconnect %d: %v", cuts, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	cancel()
	<-done
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < produced {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %d messages, have %d: %v", produced, len(got), err)
		}
		handle(b)
	}
	checkSequence(t, got, produced)
	if s.isClosed() {
		t.Fatal("session closed")
	}
}
