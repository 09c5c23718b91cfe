package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fleetwire/fleetwire/internal/netlimit"
)

// trickle sends a POST to addr announcing a body of n bytes and then
// writes it one byte every two seconds. It returns how many body bytes
// were written before the server closed the connection.
func trickle(t *testing.T, addr, path string, n int) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, addr, n)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c.SetReadDeadline(time.Now().Add(time.Duration(n) * 2 * time.Second))
		io.Copy(io.Discard, c)
	}()
	for sent := 0; sent < n; sent++ {
		select {
		case <-closed:
			return sent
		case <-time.After(2 * time.Second):
			c.Write([]byte(" "))
		}
	}
	return n
}

// TestListenerLimits: on the API, OsmAnd and NGP listeners a body trickled
// at 1 byte / 2 s is cut at the body timeout and an idle keep-alive
// connection is closed at the keep-alive timeout; past the per-address cap
// a new unauthenticated connection is answered 429, while authenticated
// topic bridge connections do not count against it.
func TestListenerLimits(t *testing.T) {
	const maxUnauth = 4
	h := startServer(t, func(c *Config) {
		c.NGPListen = "127.0.0.1:0"
		c.MQTTListen = "127.0.0.1:0"
		c.BodyTimeout = time.Second
		c.KeepAliveTimeout = time.Second
		c.MaxUnauthConns = maxUnauth
	})
	listeners := map[string]struct{ addr, path string }{
		"api":    {h.srv.Addr(), "/v2/user/auth"},
		"osmand": {h.srv.OsmandAddr(), "/"},
		"ngp":    {h.srv.NGPAddr(), "/"},
	}
	for name, l := range listeners {
		t.Run("body/"+name, func(t *testing.T) {
			t.Parallel()
			const n = 60
			if sent := trickle(t, l.addr, l.path, n); sent >= n {
				t.Fatalf("a body trickled at 1 byte / 2 s was read whole (%d bytes)", sent)
			}
		})
		t.Run("keepalive/"+name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", l.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", l.addr)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("first request: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// Silent now: the server must close the connection on its own.
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("idle keep-alive connection: read %v, want EOF (closed by the server)", err)
			}
		})
	}
	t.Run("unauthenticated", func(t *testing.T) {
		// Tests above run in parallel and hold connections of their own;
		// this one runs after them (subtests without t.Parallel wait).
		h.createUser("limits-user", "limits-password", "UTC")
		hash := h.login("limits-user", "limits-password")
		// The bridge authenticates at the upgrade: its connections free
		// their slot, so more of them than the cap stay open.
		for i := range maxUnauth + 2 {
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+h.srv.Addr()+"/bridge?hash="+hash, nil)
			if err != nil {
				t.Fatalf("bridge connection %d: %v", i+1, err)
			}
			defer ws.Close()
		}
		// So do event WebSockets once they subscribed with a session.
		unauth := h.srv.ln.(*netlimit.Listener).Unauthenticated()
		for i := range maxUnauth + 2 {
			c := h.dialEvents(nil)
			c.send(subscribeMsg(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}}))
			c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })
			waitFor(t, func() bool { return unauth.Count("127.0.0.1") == 0 })
			if t.Failed() {
				t.Fatalf("event WebSocket %d still counts as unauthenticated", i+1)
			}
		}
		var idle []net.Conn
		defer func() {
			for _, c := range idle {
				c.Close()
			}
		}()
		for i := range maxUnauth + 1 {
			c, err := net.Dial("tcp", h.srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, c)
			if i < maxUnauth {
				// Let the server accept it before the next one.
				waitFor(t, func() bool { return h.srv.ln.(*netlimit.Listener).Unauthenticated().Count("127.0.0.1") == i+1 })
			}
		}
		over := idle[maxUnauth]
		over.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(over), nil)
		if err != nil {
			t.Fatalf("connection over the cap: %v, want a 429 answer", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"code":15`) {
			t.Fatalf("over the cap: %d %q %s, want 429 with Retry-After and code 15", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		// Other listeners have budgets of their own.
		resp2, err := http.Get("http://" + h.srv.OsmandAddr() + "/?id=nobody&lat=1&lon=2")
		if err != nil {
			t.Fatalf("osmand while the API listener is full: %v", err)
		}
		resp2.Body.Close()
		if resp2.StatusCode == http.StatusTooManyRequests {
			t.Fatal("the OsmAnd listener shares the API listener's budget")
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 10 s")
}
