package atmosphere

import (
	"bytes"
	"errors"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsRunGoroutines counts the goroutines of connections: those in the wire
// packages, but for the test's own, the listener's, the reaper and the
// readiness poller.
func wsRunGoroutines(t *testing.T) int {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range bytes.Split(b.Bytes(), []byte("\n\n")) {
		if !bytes.Contains(g, []byte("/internal/wire/")) {
			continue
		}
		skip := false
		for _, not := range []string{"atmosphere.Test", "cutListener", "(*Server).reaper", "readiness.(*Poller).run", "wheel.(*Wheel).run"} {
			skip = skip || bytes.Contains(g, []byte(not))
		}
		if !skip {
			n++
		}
	}
	return n
}

// TestIdleWebSocketsHoldNoGoroutines: subscribed WebSockets that have
// nothing to send or read, with heartbeats, pings and the idle timeout
// armed, hold no goroutine of their own on the readiness path (and one
// reader each on the portable path); they still get what is pushed and
// the server still reads what they send.
func TestIdleWebSocketsHoldNoGoroutines(t *testing.T) {
	const conns = 20
	e := newEnv(t, Options{IdleTimeout: time.Minute, Heartbeat: time.Minute})
	type client struct {
		c *websocket.Conn
		s *echoSession
	}
	cs := make([]client, conns)
	for i := range cs {
		c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
		read(t, c)
		cs[i].c = c
		cs[i].s = e.nextOpened()
	}
	want := 0
	if goroutineReads {
		want += conns
	}
	// The last reads and writes finish on their own; wait for them.
	for deadline := time.Now().Add(10 * time.Second); wsRunGoroutines(t) != want; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in package atmosphere with %d idle connections, want %d", wsRunGoroutines(t), conns, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Idle does not mean deaf: a push goes out, a message comes in.
	for _, cl := range cs {
		cl.s.Push(t, "hello")
		if err := cl.c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
	}
	for i, cl := range cs {
		c := cl.c
		if got := read(t, c); got != "hello" {
			t.Fatalf("conn %d got %q", i, got)
		}
		if got := read(t, c); got != "ping" {
			t.Fatalf("conn %d echo %q", i, got)
		}
	}
}

// TestWebSocketIdleTimeout: the server pings a silent client and closes
// the connection once nothing came back for the idle timeout; the session
// gets the connection's end.
func TestWebSocketIdleTimeout(t *testing.T) {
	e := newEnv(t, Options{IdleTimeout: 300 * time.Millisecond})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	read(t, c)
	pings := 0
	c.SetPingHandler(func(string) error { pings++; return nil }) // silent: no pong
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ReadMessage()
	if err == nil {
		t.Fatal("read a message; want the connection closed")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close a silent connection: %v", err)
	}
	if pings == 0 {
		t.Fatalf("connection closed (%v) without a ping first", err)
	}
}
