package atmosphere

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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

func TestWebSocketReattachWithoutHandshake(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	id := splitHandshake(t, read(t, c), "0")
	s := e.nextOpened()
	_ = c.Close()
	waitFor(t, "detach", func() bool { return connGauge(tWebSocket).Value() == 0 })
	s.Push(t, "while away")

	c2 := e.dial(hTrackingID, id, hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	if got := read(t, c2); got != "while away" {
		t.Fatalf("first frame after reattach %q", got)
	}
	select {
	case o := <-e.h.opened:
		t.Fatalf("reattach opened a new session %q", o.id)
	default:
	}

	// Legacy clients get a whitespace frame first, which they drop.
	_ = c2.Close()
	waitFor(t, "detach", func() bool { return connGauge(tWebSocket).Value() == 0 })
	c3 := e.dial(hTrackingID, id, hTransport, "websocket", hProtocol, "true", hFramework, "2.3.8-javascript")
	if got := read(t, c3); strings.TrimSpace(got) != "" {
		t.Fatalf("legacy reattach frame %q", got)
	}
	s.Push(t, "next")
	if got := read(t, c3); got != "next" {
		t.Fatalf("got %q", got)
	}
}

// TestWebSocketUnknownID: an id the server issued whose session is gone
// is taken up again (no handshake, the reset notice first); an id it did
// not issue is never adopted: the client gets a new id in a handshake,
// then the reset notice.
func TestWebSocketUnknownID(t *testing.T) {
	key := []byte("k")
	e := newEnv(t, Options{IDKey: key, ResetNotice: []byte("reset")})
	issuedID := newID(key)
	c := e.dial(hTrackingID, issuedID, hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	s := e.nextOpened()
	if s.id != issuedID {
		t.Fatalf("opened under %q", s.id)
	}
	if got := read(t, c); got != "reset" {
		t.Fatalf("first frame %q, want the reset notice (no handshake)", got)
	}
	s.Push(t, "hi")
	if got := read(t, c); got != "hi" {
		t.Fatalf("frame %q", got)
	}

	chosen := "b623a15d-0000-4000-8000-000000000001"
	c2 := e.dial(hTrackingID, chosen, hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	s2 := e.nextOpened()
	if s2.id == chosen || !issued(key, s2.id) {
		t.Fatalf("a made-up id was adopted: %q", s2.id)
	}
	if id := splitHandshake(t, read(t, c2), "0"); id != s2.id {
		t.Fatalf("handshake id %q, session %q", id, s2.id)
	}
	if got := read(t, c2); got != "reset" {
		t.Fatalf("after the handshake %q, want the reset notice", got)
	}
	if _, _, err := websocket.DefaultDialer.Dial(e.wsURL(hTrackingID, "bad id|x", hTransport, "websocket"), nil); err == nil {
		t.Fatal("invalid tracking id accepted")
	}
}

func TestWebSocketReplacedByNewConnection(t *testing.T) {
	e := newEnv(t, Options{})
	c1 := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	id := splitHandshake(t, read(t, c1), "0")
	s := e.nextOpened()
	c2 := e.dial(hTrackingID, id, hTransport, "websocket", hFramework, "5.0.7")
	if code, _ := readClose(t, c1); code != websocket.CloseNormalClosure {
		t.Fatalf("old connection closed with %d", code)
	}
	s.Push(t, "to the new one")
	if got := read(t, c2); got != "to the new one" {
		t.Fatalf("got %q", got)
	}
	if s.isClosed() {
		t.Fatal("session closed by a reattach")
	}
}

func TestWebSocketHeartbeat(t *testing.T) {
	e := newEnv(t, Options{Heartbeat: 50 * time.Millisecond})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hTrackSize, "true", hFramework, "5.0.7")
	read(t, c)
	if got := read(t, c); got != "X" {
		t.Fatalf("heartbeat %q", got)
	}
	// X-Heartbeat-Server=0 turns heartbeats off.
	c2 := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hHeartbeat, "0", hFramework, "5.0.7")
	read(t, c2)
	_ = c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, b, err := c2.ReadMessage(); err == nil {
		t.Fatalf("unexpected frame %q", b)
	}
}

func TestHeartbeatPeriod(t *testing.T) {
	for _, c := range []struct {
		conf time.Duration
		hdr  string
		want time.Duration
	}{
		{60 * time.Second, "", 60 * time.Second},
		{60 * time.Second, "30", 60 * time.Second},
		{60 * time.Second, "90", 90 * time.Second},
		{60 * time.Second, "0", 0},
		{60 * time.Second, "junk", 60 * time.Second},
		{-1, "90", 0},
	} {
		if got := (params{heartbeat: c.hdr}).heartbeatPeriod(c.conf); got != c.want {
			t.Errorf("heartbeatPeriod(%v, %q) = %v, want %v", c.conf, c.hdr, got, c.want)
		}
	}
}

func TestWebSocketTrackMessageLength(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hTrackSize, "true", hFramework, "5.0.7")
	read(t, c)
	s := e.nextOpened()
	for _, m := range []struct{ msg, want string }{{"é", "1|é"}, {"😀", "2|😀"}, {"a|b", "3|a|b"}, {"x😀é|", "5|x😀é|"}} {
		s.Push(t, m.msg)
		if got := read(t, c); got != m.want {
			t.Fatalf("got %q, want %q", got, m.want)
		}
	}
}

func TestWebSocketOutboxClose(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	id := splitHandshake(t, read(t, c), "0")
	s := e.nextOpened()
	s.Push(t, "last words")
	s.q.Close(4001, "queue full")
	if got := read(t, c); got != "last words" {
		t.Fatalf("got %q", got)
	}
	code, text := readClose(t, c)
	if code != 4001 || text != "queue full" {
		t.Fatalf("close %d %q", code, text)
	}
	waitFor(t, "session removed", func() bool { return e.srv.lookup(id) == nil })
	if !s.isClosed() {
		t.Fatal("Session.Close not called")
	}
}

func TestShutdownClosesWebSockets(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	read(t, c)
	s := e.nextOpened()
	_, r := e.stream(hTrackingID, "0", hTransport, "streaming", hProtocol, "true", hFramework, "5.0.7")
	readN(t, r, 41)
	codes := make(chan int, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			if !asCloseError(err, &ce) || ce.Text != "server shutting down" {
				codes <- -1
				return
			}
			codes <- ce.Code
			return
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := <-codes; code != websocket.CloseGoingAway {
		t.Fatalf("close code %d", code)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("stream not ended: %v", err)
	}
	if !s.isClosed() {
		t.Fatal("session not closed")
	}
	resp, _ := e.get(hTrackingID, "0", hTransport, "long-polling")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after shutdown: %d", resp.StatusCode)
	}
}

func TestWebSocketOversizeFrame(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	read(t, c)
	if err := c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("a", maxMessage+1))); err != nil {
		t.Fatal(err)
	}
	if code, _ := readClose(t, c); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d", code)
	}
	// A frame at the limit is fine, and the server serves others.
	c2 := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	read(t, c2)
	big := strings.Repeat("b", maxMessage)
	if err := c2.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c2); got != big {
		t.Fatalf("echo of %d bytes: %d bytes", len(big), len(got))
	}
}

func TestWebSocketCompression(t *testing.T) {
	e := newEnv(t, Options{})
	d := websocket.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(e.wsURL(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ext := resp.Header.Get("Sec-Websocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
		t.Fatalf("extensions %q", ext)
	}
	read(t, c)
	msg := strings.Repeat("compressible ", 1000)
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c); got != msg {
		t.Fatal("echo differs")
	}
}

// countingConn counts the writes made to a server connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	conns chan *countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.conns <- cc
	return cc, nil
}

// TestWebSocketCoalescedWrites: messages queued while the client was
// away go out in one write when it comes back (after the 101 response).
func TestWebSocketCoalescedWrites(t *testing.T) {
	e := newEnv(t, Options{})
	cl := &countingListener{conns: make(chan *countingConn, 4)}
	ts := httptest.NewUnstartedServer(e.srv)
	cl.Listener = ts.Listener
	ts.Listener = cl
	ts.Start()
	defer ts.Close()
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/event/subscription?" + url.Values{hTrackingID: {"0"}, hTransport: {"websocket"}, hProtocol: {"true"}, hFramework: {"5.0.7"}}.Encode()
	c, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := splitHandshake(t, read(t, c), "0")
	s := e.nextOpened()
	<-cl.conns
	_ = c.Close()
	waitFor(t, "detach", func() bool { return connGauge(tWebSocket).Value() == 0 })
	const n = 20
	for i := range n {
		s.Push(t, fmt.Sprintf(`{"n":%d}`, i))
	}
	c2, _, err := websocket.DefaultDialer.Dial(strings.Replace(wsURL, hTrackingID+"=0", hTrackingID+"="+id, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	sc := <-cl.conns
	for i := range n {
		if got, want := read(t, c2), fmt.Sprintf(`{"n":%d}`, i); got != want {
			t.Fatalf("message %d: %q", i, got)
		}
	}
	if w := sc.writes.Load(); w != 2 {
		t.Fatalf("%d writes for the 101 response and %d queued messages, want 2", w, n)
	}
}

// TestWebSocketInvalidUTF8: a text frame that is not UTF-8 closes the
// connection with 1007 and never reaches the session.
func TestWebSocketInvalidUTF8(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	read(t, c)
	s := e.nextOpened()
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"action":"subscribe","hash":"`+"\xff"+`"}`)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("got %v, want close 1007", err)
	}
	if got := s.receivedMsgs(); len(got) != 0 {
		t.Fatalf("the session received %q", got)
	}
}

// TestWebSocketVersion8: a handshake for any version but 13 is answered
// 426 with Sec-WebSocket-Version: 13 (RFC 6455 §4.4).
func TestWebSocketVersion8(t *testing.T) {
	e := newEnv(t, Options{})
	req, _ := http.NewRequest(http.MethodGet, e.url(hTrackingID, "0", hTransport, "websocket"), nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Version", "8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("status %d, Sec-WebSocket-Version %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Version"))
	}
}
