package atmosphere

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/outbox"
	"github.com/gorilla/websocket"
)

// echoHandler opens echo sessions and remembers them by tracking id.
type echoHandler struct {
	mu       sync.Mutex
	sessions map[string]*echoSession
	opened   chan *echoSession
	limits   outbox.Limits
}

func newEchoHandler() *echoHandler {
	return &echoHandler{sessions: map[string]*echoSession{}, opened: make(chan *echoSession, 100)}
}

func (h *echoHandler) Open(_ *http.Request, id string, _ Binding) (Session, error) {
	s := &echoSession{id: id, q: outbox.New(h.limits), closed: make(chan struct{})}
	h.mu.Lock()
	h.sessions[id] = s
	h.mu.Unlock()
	select {
	case h.opened <- s:
	default:
	}
	return s, nil
}

func (h *echoHandler) session(id string) *echoSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id]
}

// echoSession pushes back every message it receives.
type echoSession struct {
	id        string
	q         *outbox.Queue
	closed    chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	received  []string
}

func (s *echoSession) Outbox() *outbox.Queue { return s.q }

func (s *echoSession) Receive(msg []byte) {
	s.mu.Lock()
	s.received = append(s.received, string(msg))
	s.mu.Unlock()
	_ = s.q.Push(append([]byte(nil), msg...))
}

func (s *echoSession) Close() {
	s.closeOnce.Do(func() {
		s.q.Close(1000, "")
		close(s.closed)
	})
}

// Push queues a server message.
func (s *echoSession) Push(t testing.TB, msg string) {
	t.Helper()
	if err := s.q.Push([]byte(msg)); err != nil {
		t.Fatalf("push %q: %v", msg, err)
	}
}

func (s *echoSession) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func (s *echoSession) receivedMsgs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.received...)
}

// cutListener records accepted connections so a test can cut them from
// the server side.
type cutListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*cutConn
}

// cutConn is an accepted connection whose writes can be made to vanish,
// as bytes lost in flight do.
type cutConn struct {
	net.Conn
	lost atomic.Bool
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.lost.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// SyscallConn gives the socket's raw access, so that the server reads
// through the readiness poller as it does on a plain TCP connection.
func (c *cutConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

func (l *cutListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, cc)
	l.mu.Unlock()
	return cc, nil
}

// loseWrites makes whatever the server writes from now on on the
// connections accepted so far vanish without an error.
func (l *cutListener) loseWrites() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.lost.Store(true)
	}
}

// cut resets every connection accepted so far.
func (l *cutListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset: data in flight is lost
		}
		_ = c.Close()
	}
	l.conns = nil
}

type testEnv struct {
	t   *testing.T
	h   *echoHandler
	srv *Server
	ts  *httptest.Server
	ln  *cutListener
}

// goroutineReads makes every test server read WebSockets with a goroutine
// each (the portable path) instead of the readiness poller; set by
// FLEETWIRE_GOROUTINE_READS=1, to run the suite both ways.
var goroutineReads = os.Getenv("FLEETWIRE_GOROUTINE_READS") == "1"

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, opts Options) *testEnv {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if goroutineReads {
		opts.GoroutineReads = true
	}
	h := newEchoHandler()
	srv := NewServer(h, opts)
	ts := httptest.NewUnstartedServer(srv)
	ln := &cutListener{Listener: ts.Listener}
	ts.Listener = ln
	ts.Start()
	e := &testEnv{t: t, h: h, srv: srv, ts: ts, ln: ln}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.Close()
	})
	return e
}

// url builds the endpoint URL with Atmosphere query parameters given as
// name, value pairs.
func (e *testEnv) url(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return e.ts.URL + "/event/subscription?" + q.Encode()
}

func (e *testEnv) wsURL(kv ...string) string {
	return "ws" + strings.TrimPrefix(e.url(kv...), "http")
}

func (e *testEnv) dial(kv ...string) *websocket.Conn {
	e.t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(e.wsURL(kv...), nil)
	if err != nil {
		e.t.Fatalf("dial: %v (resp %v)", err, resp)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

// read reads one text frame within a few seconds.
func read(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("frame type %d", typ)
	}
	return string(b)
}

// readClose reads until the close frame and returns its code and text.
func readClose(t testing.TB, c *websocket.Conn) (int, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if ok := asCloseError(err, &ce); ok {
			return ce.Code, ce.Text
		}
		t.Fatalf("expected a close frame, got %v", err)
	}
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	if ok {
		*ce = e
	}
	return ok
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// splitHandshake checks h is `<uuid>|<ms>|X|` and returns the uuid.
func splitHandshake(t testing.TB, h string, ms string) string {
	t.Helper()
	parts := strings.Split(h, "|")
	if len(parts) != 4 || len(parts[0]) != 36 || parts[1] != ms || parts[2] != "X" || parts[3] != "" {
		t.Fatalf("handshake %q", h)
	}
	return parts[0]
}

// nextOpened returns the next session the handler opened.
func (e *testEnv) nextOpened() *echoSession {
	e.t.Helper()
	select {
	case s := <-e.h.opened:
		return s
	case <-time.After(5 * time.Second):
		e.t.Fatal("no session opened")
		return nil
	}
}
