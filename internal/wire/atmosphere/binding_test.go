package atmosphere

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// from returns an HTTP client and a WebSocket dialer whose connections
// come from the loopback address local (127.0.0.2 is another host to the
// server on 127.0.0.1).
func from(local string) (*http.Client, *websocket.Dialer) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 10 * time.Second},
		&websocket.Dialer{NetDialContext: dial, HandshakeTimeout: 5 * time.Second}
}

// TestTakeoverNeedsMoreThanTheID: a request from another address that
// shows only a live session's tracking id gets nothing of it: its
// WebSocket opens a new session under a new id (the victim's connection
// stays), its long-poll and its acknowledged replay likewise, its push is
// refused and its close request ends nothing. A client that opened its
// session with a resume secret can take it up from any address with the
// secret, and only with it.
func TestTakeoverNeedsMoreThanTheID(t *testing.T) {
	e := newEnv(t, Options{ResetNotice: []byte("reset")})
	victim := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7", hReceived, "0")
	id := splitHandshake(t, read(t, victim), "0")
	s := e.nextOpened()
	s.Push(t, "private")
	if got := read(t, victim); got != "private" {
		t.Fatalf("victim got %q", got)
	}

	hc, wd := from("127.0.0.2")
	evil, _, err := wd.Dial(e.wsURL(hTrackingID, id, hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7", hReceived, "0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	newID := splitHandshake(t, read(t, evil), "0")
	if e.nextOpened().id != newID {
		t.Fatal("the attacker's session is not the new one")
	}
	if newID == id {
		t.Fatal("the attacker got the victim's session id")
	}
	if got := read(t, evil); got != "reset" {
		t.Fatalf("attacker's first message %q, want the reset notice (not the replayed %q)", got, "private")
	}
	s.Push(t, "still mine")
	if got := read(t, victim); got != "still mine" {
		t.Fatalf("victim's connection: %q", got)
	}

	resp, err := hc.Post(e.url(hTrackingID, id, hTransport, "long-polling"), "text/plain", strings.NewReader("injected"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("push from another address: %d", resp.StatusCode)
	}
	s.mu.Lock()
	got := append([]string(nil), s.received...)
	s.mu.Unlock()
	if len(got) != 0 {
		t.Fatalf("pushed message reached the session: %v", got)
	}
	resp, err = hc.Get(e.url(hTrackingID, id, hTransport, "close"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.Push(t, "not closed")
	if got := read(t, victim); got != "not closed" {
		t.Fatalf("victim after the close request: %q", got)
	}

	// With a resume secret: any address, but only with the secret.
	own := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7", hResume, "s3cret-of-the-client")
	ownID := splitHandshake(t, read(t, own), "0")
	os := e.nextOpened()
	_ = own.Close()
	moved, _, err := wd.Dial(e.wsURL(hTrackingID, ownID, hTransport, "websocket", hFramework, "5.0.7", hResume, "s3cret-of-the-client"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	os.Push(t, "after the move")
	if got := read(t, moved); got != "after the move" {
		t.Fatalf("resumed from another address with the secret: %q", got)
	}
	same, _, err := websocket.DefaultDialer.Dial(e.wsURL(hTrackingID, ownID, hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer same.Close()
	if id := splitHandshake(t, read(t, same), "0"); id == ownID {
		t.Fatal("the session was taken without its secret from its own address")
	}
}

// TestBindNone: with BindNone a plain session is usable from any address
// with its id alone (the documented trade-off for clients that move).
func TestBindNone(t *testing.T) {
	e := newEnv(t, Options{Bind: BindNone})
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	id := splitHandshake(t, read(t, c), "0")
	s := e.nextOpened()
	_ = c.Close()
	hc, _ := from("127.0.0.2")
	done := make(chan string, 1)
	go func() {
		resp, err := hc.Get(e.url(hTrackingID, id, hTransport, "long-polling", hTrackSize, "true", hFramework, "5.0.7"))
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	time.Sleep(100 * time.Millisecond)
	s.Push(t, "moved")
	if got := <-done; got != "5|moved" {
		t.Fatalf("poll from another address: %q", got)
	}
}

func TestIssuedIDs(t *testing.T) {
	k1, k2 := []byte("one"), []byte("two")
	id := newID(k1)
	if len(id) != 36 || id[14] != '4' || !strings.ContainsAny(id[19:20], "89ab") {
		t.Fatalf("id %q is not a version-4 UUID", id)
	}
	if !issued(k1, id) || issued(k2, id) || issued(k1, strings.ToUpper(id)) || issued(k1, id[:35]+"0") && id[35] != '0' {
		t.Fatalf("issued(%q) wrong", id)
	}
	for _, bad := range []string{"", "0", "b623a15d-9623-4fd8-a9d3-697036635c29", "not-a-uuid-at-all-not-a-uuid-at-all!", id + "x"} {
		if issued(k1, bad) {
			t.Errorf("issued(%q)", bad)
		}
	}
	if ShortID(id) == id || !strings.HasPrefix(id, strings.TrimSuffix(ShortID(id), "…")) {
		t.Errorf("ShortID(%q) = %q", id, ShortID(id))
	}
}

// unboundHandler opens echo sessions that never authenticate.
type unboundHandler struct{ *echoHandler }

type unboundSession struct{ *echoSession }

func (unboundSession) Bound() bool { return false }

func (h unboundHandler) Open(r *http.Request, id string, b Binding) (Session, error) {
	s, err := h.echoHandler.Open(r, id, b)
	return unboundSession{s.(*echoSession)}, err
}

// TestSubscribeWithin: a WebSocket whose session has not authenticated
// within Options.SubscribeWithin is closed with 1008.
func TestSubscribeWithin(t *testing.T) {
	h := unboundHandler{newEchoHandler()}
	srv := NewServer(h, Options{Logger: quietLogger(), SubscribeWithin: 200 * time.Millisecond})
	defer srv.Shutdown(t.Context())
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/?X-Atmosphere-tracking-id=0&X-Atmosphere-Transport=websocket&X-atmo-protocol=true&X-Atmosphere-Framework=5.0.7", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read(t, c) // the handshake
	if code, reason := readClose(t, c); code != 1008 || !strings.Contains(reason, "subscription") {
		t.Fatalf("closed with %d %q, want 1008", code, reason)
	}
}

// TestSessionsPerAddress: past MaxSessionsPerAddr alive sessions from one
// address, a new one is refused with 429; one that ends frees its slot.
func TestSessionsPerAddress(t *testing.T) {
	e := newEnv(t, Options{MaxSessionsPerAddr: 3})
	var ids []string
	for range 3 {
		resp, body := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true", hFramework, "5.0.7")
		if resp.StatusCode != 200 {
			t.Fatalf("session %d: %d", len(ids), resp.StatusCode)
		}
		ids = append(ids, splitHandshake(t, body, "0"))
	}
	resp, _ := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true", hFramework, "5.0.7")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth session: %d %v", resp.StatusCode, resp.Header)
	}
	// Another address is not held back.
	hc, _ := from("127.0.0.2")
	r2, err := hc.Get(e.url(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true", hFramework, "5.0.7"))
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 {
		t.Fatalf("session from another address: %d", r2.StatusCode)
	}
	e.get(hTrackingID, ids[0], hTransport, "close")
	if resp, _ := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true", hFramework, "5.0.7"); resp.StatusCode != 200 {
		t.Fatalf("after one ended: %d", resp.StatusCode)
	}
}
