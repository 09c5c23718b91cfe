package atmosphere

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// get performs a GET and returns the response with its whole body.
func (e *testEnv) get(kv ...string) (*http.Response, string) {
	e.t.Helper()
	return e.do(http.MethodGet, "", kv...)
}

func (e *testEnv) do(method, body string, kv ...string) (*http.Response, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url(kv...), strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	q := req.URL.Query()
	if method == http.MethodGet && q.Get(hTransport) == tLongPolling && !strings.HasPrefix(q.Get(hFramework), "5") && q.Get(hTrackingID) != "0" {
		// A held long-poll of a legacy client starts with one space.
		if len(b) == 0 || b[0] != ' ' {
			e.t.Fatalf("legacy long-poll body %q does not start with the space", b)
		}
		b = b[1:]
	}
	return resp, string(b)
}

// stream opens a held GET and returns a reader of its body.
func (e *testEnv) stream(kv ...string) (*http.Response, *bufio.Reader) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url(kv...), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("GET: %v", err)
	}
	e.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body)
}

// readN reads exactly n bytes within a few seconds.
func readN(t testing.TB, r *bufio.Reader, n int) string {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		ch <- result{b, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("read %d bytes: %v (got %q)", n, res.err, res.b)
		}
		return string(res.b)
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out reading %d bytes", n)
		return ""
	}
}

func checkNoCache(t *testing.T, resp *http.Response) {
	t.Helper()
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") {
		t.Errorf("Cache-Control %q", cc)
	}
}

func TestLongPollHandshake(t *testing.T) {
	e := newEnv(t, Options{})
	resp, body := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true", hFramework, "2.3.8-javascript")
	id := splitHandshake(t, body, "0")
	if got := resp.Header.Get(hTrackingID); got != id {
		t.Errorf("tracking id header %q, handshake %q", got, id)
	}
	checkNoCache(t, resp)
	if s := e.nextOpened(); s.id != id {
		t.Fatalf("opened %q", s.id)
	}

	_, body = e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true", hTrackSize, "true")
	if !strings.HasPrefix(body, "41|") {
		t.Fatalf("framed handshake %q", body)
	}
	splitHandshake(t, body[3:], "0")
}

func TestLongPollDeliversBetweenPolls(t *testing.T) {
	e := newEnv(t, Options{})
	_, body := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true", hTrackSize, "true")
	id := splitHandshake(t, body[3:], "0")
	s := e.h.session(id)
	// Pushed while no request is held: kept for the next poll.
	s.Push(t, "one")
	s.Push(t, "é|😀")
	_, body = e.get(hTrackingID, id, hTransport, "long-polling", hProtocol, "true", hTrackSize, "true")
	if body != "3|one4|é|😀" {
		t.Fatalf("poll 1 %q", body)
	}
	// Pushed while the request is held.
	done := make(chan string, 1)
	go func() {
		_, b := e.get(hTrackingID, id, hTransport, "long-polling", hTrackSize, "true")
		done <- b
	}()
	waitFor(t, "held poll", func() bool { return connGauge(tLongPolling).Value() > 0 })
	s.Push(t, "three")
	if got := <-done; got != "5|three" {
		t.Fatalf("poll 2 %q", got)
	}
}

func TestLongPollUnframedOnePerResponse(t *testing.T) {
	e := newEnv(t, Options{})
	_, body := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true")
	id := splitHandshake(t, body, "0")
	s := e.h.session(id)
	s.Push(t, `{"a":1}`)
	s.Push(t, `{"b":2}`)
	for _, want := range []string{`{"a":1}`, `{"b":2}`} {
		if _, got := e.get(hTrackingID, id, hTransport, "long-polling"); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestLongPollTimeoutAndHeaders(t *testing.T) {
	e := newEnv(t, Options{LongPollTimeout: 100 * time.Millisecond})
	_, body := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true")
	id := splitHandshake(t, body, "0")
	start := time.Now()
	resp, body := e.get(hTrackingID, id, hTransport, "long-polling")
	if body != "" || resp.StatusCode != 200 {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("answered after %v", d)
	}
	if resp.Header.Get(hTrackingID) != id {
		t.Fatalf("tracking id header %q", resp.Header.Get(hTrackingID))
	}
}

func TestJSONP(t *testing.T) {
	e := newEnv(t, Options{})
	_, body := e.get(hTrackingID, "0", hTransport, "jsonp", hProtocol, "true", "jsonpTransport", "atmosphere1")
	if !strings.HasPrefix(body, `atmosphere1({"message":"`) || !strings.HasSuffix(body, `|0|X|"});`) {
		t.Fatalf("handshake %q", body)
	}
	id := body[len(`atmosphere1({"message":"`):][:36]
	e.h.session(id).Push(t, `say "hi"`)
	_, body = e.get(hTrackingID, id, hTransport, "jsonp", "jsonpTransport", "atmosphere2")
	if body != `atmosphere2({"message":"say \"hi\""});` {
		t.Fatalf("poll %q", body)
	}
	resp, _ := e.get(hTrackingID, id, hTransport, "jsonp", "jsonpTransport", "alert(1)")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad callback: %d", resp.StatusCode)
	}
}

func TestStreamingHandshake(t *testing.T) {
	e := newEnv(t, Options{})
	// Legacy client: padding, then the framed handshake.
	resp, r := e.stream(hTrackingID, "0", hTransport, "streaming", hProtocol, "true", hTrackSize, "true", hFramework, "2.3.8-javascript")
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	checkNoCache(t, resp)
	pad := readN(t, r, paddingLen+1)
	if strings.TrimRight(pad, " ") != "\n" && pad != strings.Repeat(" ", paddingLen)+"\n" {
		t.Fatalf("padding %q", pad)
	}
	hs := readN(t, r, 44)
	id := splitHandshake(t, hs[3:], "0")
	if hs[:3] != "41|" {
		t.Fatalf("handshake %q", hs)
	}
	s := e.h.session(id)
	s.Push(t, "é")
	s.Push(t, "😀")
	s.Push(t, "a|b")
	if got := readN(t, r, len("1|é2|😀3|a|b")); got != "1|é2|😀3|a|b" {
		t.Fatalf("messages %q", got)
	}

	// 5.x client: no padding, unframed handshake first.
	_, r = e.stream(hTrackingID, "0", hTransport, "streaming", hProtocol, "true", hFramework, "5.0.7")
	splitHandshake(t, readN(t, r, 41), "0")
}

func TestSSE(t *testing.T) {
	e := newEnv(t, Options{})
	resp, r := e.stream(hTrackingID, "0", hTransport, "sse", hProtocol, "true", hFramework, "5.0.7")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	ev := readN(t, r, len("data:")+41+4)
	if !strings.HasPrefix(ev, "data:") || !strings.HasSuffix(ev, "\r\n\r\n") {
		t.Fatalf("event %q", ev)
	}
	id := splitHandshake(t, ev[5:len(ev)-4], "0")
	s := e.h.session(id)
	s.Push(t, "line1\nline2")
	want := "data:line1\r\ndata:line2\r\n\r\n"
	if got := readN(t, r, len(want)); got != want {
		t.Fatalf("multi-line %q", got)
	}

	// Legacy, framed: padding line, then data:41|…
	_, r = e.stream(hTrackingID, "0", hTransport, "sse", hProtocol, "true", hTrackSize, "true", hFramework, "2.3.8-javascript")
	readN(t, r, paddingLen+1)
	ev = readN(t, r, len("data:41|")+41+4)
	if !strings.HasPrefix(ev, "data:41|") {
		t.Fatalf("framed event %q", ev)
	}
}

func TestStreamingHeartbeat(t *testing.T) {
	e := newEnv(t, Options{Heartbeat: 50 * time.Millisecond})
	_, r := e.stream(hTrackingID, "0", hTransport, "streaming", hProtocol, "true", hTrackSize, "true", hFramework, "5.0.7")
	readN(t, r, 44)
	if got := readN(t, r, 3); got != "1|X" {
		t.Fatalf("heartbeat %q", got)
	}
	_, r = e.stream(hTrackingID, "0", hTransport, "sse", hProtocol, "true", hFramework, "5.0.7")
	readN(t, r, 50)
	if got := readN(t, r, 10); got != "data:X\r\n\r\n" {
		t.Fatalf("sse heartbeat %q", got)
	}
}

func TestPushRoutedToSession(t *testing.T) {
	e := newEnv(t, Options{})
	_, r := e.stream(hTrackingID, "0", hTransport, "streaming", hProtocol, "true", hTrackSize, "true", hFramework, "5.0.7")
	id := splitHandshake(t, readN(t, r, 44)[3:], "0")
	s := e.h.session(id)

	// A 5.x push repeats the transport and the protocol flag: never a handshake.
	resp, body := e.do(http.MethodPost, "hello", hTrackingID, id, hTransport, "streaming", hProtocol, "true")
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("push: %d %q", resp.StatusCode, body)
	}
	if got := readN(t, r, 7); got != "5|hello" {
		t.Fatalf("echo %q", got)
	}
	// Legacy push, and a client heartbeat that must be swallowed.
	e.do(http.MethodPost, "X", hTrackingID, id, hTransport, "polling")
	e.do(http.MethodPost, "é", hTrackingID, id, hTransport, "polling")
	if got := readN(t, r, len("1|é")); got != "1|é" {
		t.Fatalf("echo %q", got)
	}
	if got := s.receivedMsgs(); strings.Join(got, ",") != "hello,é" {
		t.Fatalf("received %q", got)
	}

	resp, _ = e.do(http.MethodPost, "lost", hTrackingID, "no-such-session", hTransport, "polling")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get(hError) == "" {
		t.Fatalf("unknown id: %d %q", resp.StatusCode, resp.Header.Get(hError))
	}
	resp, _ = e.do(http.MethodPost, strings.Repeat("a", maxMessage+1), hTrackingID, id, hTransport, "polling")
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize push: %d", resp.StatusCode)
	}
}

func TestCloseRequest(t *testing.T) {
	e := newEnv(t, Options{})
	_, body := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true")
	id := splitHandshake(t, body, "0")
	s := e.h.session(id)
	held := make(chan string, 1)
	go func() {
		_, b := e.get(hTrackingID, id, hTransport, "long-polling")
		held <- b
	}()
	waitFor(t, "held poll", func() bool { return connGauge(tLongPolling).Value() > 0 })
	resp, body := e.get(hTrackingID, id, hTransport, "close")
	if resp.StatusCode != 200 || body != "" {
		t.Fatalf("close: %d %q", resp.StatusCode, body)
	}
	if !s.isClosed() {
		t.Fatal("session not closed")
	}
	select {
	case b := <-held:
		if b != "" {
			t.Fatalf("held poll answered %q", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("held poll not answered")
	}
	if e.srv.lookup(id) != nil {
		t.Fatal("session still known")
	}
	// A close by POST (sendBeacon) for an unknown id is fine too.
	if resp, _ := e.do(http.MethodPost, "", hTrackingID, id, hTransport, "close"); resp.StatusCode != 200 {
		t.Fatalf("second close: %d", resp.StatusCode)
	}
}

func TestReaper(t *testing.T) {
	e := newEnv(t, Options{SessionGrace: 150 * time.Millisecond})
	_, body := e.get(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true")
	id := splitHandshake(t, body, "0")
	s := e.h.session(id)
	// Attached sessions are never reaped.
	c := e.dial(hTrackingID, id, hTransport, "websocket", hFramework, "5.0.7")
	time.Sleep(400 * time.Millisecond)
	if s.isClosed() {
		t.Fatal("attached session reaped")
	}
	start := time.Now()
	_ = c.Close()
	waitFor(t, "reaper", s.isClosed)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("reaped after %v", d)
	}
	if e.srv.lookup(id) != nil {
		t.Fatal("session still known")
	}
}

// TestOptionsPreflight: CORS only for the allowed origins, with
// credentials only for a listed origin, never for a reflected one.
func TestOptionsPreflight(t *testing.T) {
	preflight := func(e *testEnv, origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, e.url(), nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
			t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		return resp.Header
	}
	listed := newEnv(t, Options{AllowedOrigins: []string{"https://app.example"}})
	if h := preflight(listed, "https://app.example"); h.Get("Access-Control-Allow-Origin") != "https://app.example" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("listed origin: %v", h)
	}
	if h := preflight(listed, "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("unlisted origin: %v", h)
	}
	if h := preflight(newEnv(t, Options{}), "https://app.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no origins allowed: %v", h)
	}
	if h := preflight(newEnv(t, Options{AllowedOrigins: []string{"*"}}), "https://any.example"); h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("any origin: %v", h)
	}
}
