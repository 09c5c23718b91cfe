package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/fleetwire/fleetwire/internal/state"
)

const testAdminKey = "test-admin-key"

// harness is one real server on loopback ports, torn down with the test.
type harness struct {
	t      testing.TB
	srv    *Server
	base   string // http://127.0.0.1:port
	osmand string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan error
	dir    string
}

func startServer(t testing.TB, mutate func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	return startServerIn(t, dir, mutate)
}

func startServerIn(t testing.TB, dir string, mutate func(*Config)) *harness {
	t.Helper()
	cfg := Config{
		Listen:       "127.0.0.1:0",
		OsmandListen: "127.0.0.1:0",
		DataDir:      dir,
		AdminKey:     testAdminKey,
		Heartbeat:    time.Minute,
		SessionGrace: 5 * time.Second,
		State:        state.Options{FlushEvery: 100 * time.Millisecond},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	h := &harness{t: t, srv: srv, cancel: cancel, done: make(chan error, 1), dir: dir,
		base: "http://" + srv.Addr(), osmand: "http://" + srv.OsmandAddr()}
	go func() { h.done <- srv.Run(ctx) }()
	<-srv.Ready()
	t.Cleanup(h.stop)
	return h
}

// stop shuts the server down and waits for it; safe to call twice.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("server run: %v", err)
		}
	case <-time.After(45 * time.Second):
		// Shutdown's own bounds (10 s for the HTTP and event connections,
		// 10 s for the last state flush) can add up on a loaded machine;
		// past them, show where it is stuck.
		buf := make([]byte, 1<<20)
		h.t.Errorf("server did not stop within 45 s; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
}

// call posts JSON to a path and decodes the JSON answer.
func (h *harness) call(method, path string, body any, header map[string]string) (int, map[string]any) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		h.t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, m
}

func (h *harness) admin(method, path string, body any) map[string]any {
	h.t.Helper()
	code, m := h.call(method, path, body, map[string]string{"X-Admin-Key": testAdminKey})
	if code != 200 || m["success"] != true {
		h.t.Fatalf("admin %s %s: %d %v", method, path, code, m)
	}
	return m
}

// findID digs the id of the created entity out of an admin answer.
func findID(m map[string]any) int64 {
	for _, k := range []string{"user", "tracker", "value"} {
		if sub, ok := m[k].(map[string]any); ok {
			if id, ok := sub["id"].(float64); ok {
				return int64(id)
			}
		}
	}
	if id, ok := m["id"].(float64); ok {
		return int64(id)
	}
	return 0
}

func (h *harness) createUser(login, password, tz string) int64 {
	h.t.Helper()
	m := h.admin("POST", "/admin/users", map[string]any{"login": login, "password": password, "title": login, "time_zone": tz})
	id := findID(m)
	if id == 0 {
		h.t.Fatalf("no user id in %v", m)
	}
	return id
}

// tracker is a created tracker as the tests need it.
type tracker struct {
	id, sourceID int64
	device       string
}

func (h *harness) createTracker(userID int64, label, device string) tracker {
	h.t.Helper()
	m := h.admin("POST", "/admin/trackers", map[string]any{"user_id": userID, "label": label, "device_id": device, "model": "osmand"})
	id := findID(m)
	if id == 0 {
		h.t.Fatalf("no tracker id in %v", m)
	}
	tr := tracker{id: id, device: device}
	for _, k := range []string{"tracker", "value"} {
		if sub, ok := m[k].(map[string]any); ok {
			if src, ok := sub["source"].(map[string]any); ok {
				tr.sourceID = int64(src["id"].(float64))
			} else if sid, ok := sub["source_id"].(float64); ok {
				tr.sourceID = int64(sid)
			}
		}
	}
	if tr.sourceID == 0 {
		h.t.Fatalf("no source id in %v", m)
	}
	return tr
}

func (h *harness) login(login, password string) string {
	h.t.Helper()
	code, m := h.call("POST", "/v2/user/auth", map[string]any{"login": login, "password": password}, nil)
	hash, _ := m["hash"].(string)
	if code != 200 || len(hash) != 32 {
		h.t.Fatalf("user/auth: %d %v", code, m)
	}
	return hash
}

// fix reports one OsmAnd position for a device.
func (h *harness) fix(device string, lat, lon, speedKnots float64) {
	h.t.Helper()
	q := url.Values{}
	q.Set("id", device)
	q.Set("lat", fmt.Sprint(lat))
	q.Set("lon", fmt.Sprint(lon))
	q.Set("timestamp", fmt.Sprint(time.Now().Unix()))
	q.Set("speed", fmt.Sprint(speedKnots))
	resp, err := http.Get(h.osmand + "/?" + q.Encode())
	if err != nil {
		h.t.Fatalf("osmand fix: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("osmand fix for %s: %s", device, resp.Status)
	}
}

// wsClient is an Atmosphere WebSocket client as atmosphere.js drives it.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	uuid string
	// track is true when trackMessageLength framing was asked for.
	track bool
}

// dialEvents opens /v2/event/subscription with the atmosphere.js query
// parameters and reads the protocol handshake.
func (h *harness) dialEvents(extra url.Values) *wsClient {
	h.t.Helper()
	q := url.Values{}
	q.Set("X-Atmosphere-tracking-id", "0")
	q.Set("X-Atmosphere-Framework", "2.3.8-javascript")
	q.Set("X-Atmosphere-Transport", "websocket")
	q.Set("X-atmo-protocol", "true")
	q.Set("Content-Type", "application/json")
	for k, v := range extra {
		q[k] = v
	}
	u := "ws" + strings.TrimPrefix(h.base, "http") + "/v2/event/subscription?" + q.Encode()
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		h.t.Fatalf("dial events: %v", err)
	}
	c := &wsClient{t: h.t, conn: conn, track: q.Get("X-Atmosphere-TrackMessageSize") == "true"}
	h.t.Cleanup(func() { conn.Close() })
	first := c.readRaw(5 * time.Second)
	if c.track {
		i := strings.IndexByte(first, '|')
		first = first[i+1:]
	}
	parts := strings.Split(first, "|")
	if len(parts) != 4 || len(parts[0]) != 36 || parts[2] != "X" || parts[3] != "" {
		h.t.Fatalf("handshake frame %q, want uuid|ms|X|", first)
	}
	c.uuid = parts[0]
	return c
}

func (c *wsClient) readRaw(timeout time.Duration) string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	typ, data, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("frame type %d, want text", typ)
	}
	return string(data)
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next returns the next JSON message, skipping heartbeats.
func (c *wsClient) next(timeout time.Duration) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		raw := c.readRaw(time.Until(deadline))
		if c.track {
			i := strings.IndexByte(raw, '|')
			if i > 0 {
				raw = raw[i+1:]
			}
		}
		if strings.TrimSpace(raw) == "X" || strings.TrimSpace(raw) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			c.t.Fatalf("frame is not JSON: %q", raw)
		}
		return m
	}
}

// await returns the first message matching pred, failing after timeout.
func (c *wsClient) await(timeout time.Duration, what string, pred func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		m := c.next(time.Until(deadline))
		if pred(m) {
			return m
		}
	}
	c.t.Fatalf("no %s within %s", what, timeout)
	return nil
}

func isEvent(name string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["type"] == "event" && m["event"] == name }
}
