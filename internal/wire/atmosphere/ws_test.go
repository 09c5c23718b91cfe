package atmosphere

import (
	"strings"
	"testing"
	"time"
)

func TestWebSocketHandshake(t *testing.T) {
	e := newEnv(t, Options{ClientHeartbeat: 30 * time.Second})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	id := splitHandshake(t, read(t, c), "30000")
	s := e.nextOpened()
	if s.id != id {
		t.Fatalf("session %q, handshake %q", s.id, id)
	}
	s.Push(t, "hello")
	if got := read(t, c); got != "hello" {
		t.Fatalf("got %q", got)
	}
}

func TestWebSocketHandshakeFramed(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hTrackSize, "true", hFramework, "5.0.7")
	h := read(t, c)
	if !strings.HasPrefix(h, "41|") {
		t.Fatalf("handshake %q", h)
	}
	id := splitHandshake(t, h[3:], "0")
	if s := e.nextOpened(); s.id != id {
		t.Fatalf("session %q, handshake %q", s.id, id)
	}
}

func TestWebSocketEchoAndPaddingSwallowed(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	read(t, c)
	s := e.nextOpened()
	for _, m := range []string{"X", "ping", "X", "pong"} {
		if err := c.WriteMessage(1, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(t, c); got != "ping" {
		t.Fatalf("got %q", got)
	}
	if got := read(t, c); got != "pong" {
		t.Fatalf("got %q", got)
	}
	if got := s.receivedMsgs(); strings.Join(got, ",") != "ping,pong" {
		t.Fatalf("received %q", got)
	}
}
