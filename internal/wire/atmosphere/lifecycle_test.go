package atmosphere

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/gorilla/websocket"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, Options{})
	sessions, ws := mSessions.Value(), connGauge(tWebSocket).Value()
	c := e.dial(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7")
	id := splitHandshake(t, read(t, c), "0")
	if mSessions.Value() != sessions+1 || connGauge(tWebSocket).Value() != ws+1 {
		t.Fatalf("sessions %d→%d, websockets %d→%d", sessions, mSessions.Value(), ws, connGauge(tWebSocket).Value())
	}
	var b strings.Builder
	if _, err := metrics.Default.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`fleetwire_connections{transport="websocket"}`, `fleetwire_connections{transport="long-polling"}`,
		"fleetwire_atmosphere_sessions ", "fleetwire_atmosphere_replayed_total "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	_ = c.Close()
	waitFor(t, "detach", func() bool { return connGauge(tWebSocket).Value() == ws })
	e.get(hTrackingID, id, hTransport, "close")
	if mSessions.Value() != sessions {
		t.Fatalf("sessions %d after close, want %d", mSessions.Value(), sessions)
	}
}

// TestNoGoroutineLeaks opens every transport, shuts down, and checks that
// every goroutine the server started is gone.
func TestNoGoroutineLeaks(t *testing.T) {
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()

	h := newEchoHandler()
	srv := NewServer(h, Options{Logger: quietLogger(), Heartbeat: 20 * time.Millisecond, SessionGrace: 50 * time.Millisecond})
	ts := httptest.NewServer(srv)
	e := &testEnv{t: t, h: h, srv: srv, ts: ts}
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	open := func(kv ...string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, e.url(kv...), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	c, _, err := websocket.DefaultDialer.Dial(e.wsURL(hTrackingID, "0", hTransport, "websocket", hProtocol, "true"), nil)
	if err != nil {
		t.Fatal(err)
	}
	read(t, c)
	go func() { // keep reading heartbeats until the close
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	var bodies []*http.Response
	for _, tp := range []string{"streaming", "sse", "long-polling"} {
		bodies = append(bodies, open(hTrackingID, "0", hTransport, tp))
	}
	// A session left alone is reaped.
	resp := open(hTrackingID, "0", hTransport, "long-polling", hProtocol, "true")
	resp.Body.Close()
	time.Sleep(150 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		b.Body.Close()
	}
	c.Close()
	ts.Close()
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
