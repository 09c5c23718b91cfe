package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const wait = 5 * time.Second

func subscribeMsg(hash string, requests ...map[string]any) map[string]any {
	return map[string]any{"action": "subscribe", "hash": hash, "requests": requests}
}

// TestEventsEndToEnd drives the whole path a fleet app uses: admin creates
// a user and trackers, the app signs in, opens the Atmosphere WebSocket,
// subscribes to state and state_batch, and a device reports over OsmAnd.
func TestEventsEndToEnd(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("alice@example.com", "secret-1", "Europe/Berlin")
	other := h.createUser("bob@example.com", "secret-2", "UTC")
	tr1 := h.createTracker(uid, "Van 1", "dev-1")
	tr2 := h.createTracker(uid, "Van 2", "dev-2")
	foreign := h.createTracker(other, "Bob's", "dev-bob")
	hash := h.login("alice@example.com", "secret-1")

	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash,
		map[string]any{"type": "state", "trackers": []int64{tr1.id, foreign.id, 999999}},
		map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "200ms", "format": "compact"},
	))
	resp := c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })
	if resp["action"] != "subscription/subscribe" {
		t.Fatalf("response action %v", resp["action"])
	}
	data := resp["data"].(map[string]any)
	st := data["state"].(map[string]any)
	if st["success"] != true {
		t.Fatalf("state sub %v", st)
	}
	vals := st["value"].(map[string]any)
	want := map[string]string{itoa(tr1.id): "normal", itoa(foreign.id): "unknown", "999999": "unknown"}
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("state value[%s] = %v, want %s (all: %v)", k, vals[k], v, vals)
		}
	}
	sb := data["state_batch"].(map[string]any)["value"].(map[string]any)
	if sb[itoa(tr1.id)] != "normal" || sb[itoa(tr2.id)] != "normal" || sb[itoa(foreign.id)] != nil {
		t.Errorf("state_batch values %v", sb)
	}

	h.fix("dev-1", 52.5, 13.4, 10)
	ev := c.await(wait, "state event for tracker 1", func(m map[string]any) bool {
		if !isEvent("state")(m) {
			return false
		}
		d := m["data"].(map[string]any)
		return int64(d["source_id"].(float64)) == tr1.sourceID && d["gps"].(map[string]any)["location"] != nil
	})
	gps := ev["data"].(map[string]any)["gps"].(map[string]any)
	loc := gps["location"].(map[string]any)
	if loc["lat"].(float64) != 52.5 || loc["lng"].(float64) != 13.4 {
		t.Errorf("location %v", loc)
	}
	if sp := gps["speed"].(float64); sp != 19 { // 10 knots = 18.52 km/h
		t.Errorf("speed %v km/h, want 19 (10 knots)", sp)
	}
	if _, err := time.Parse("2006-01-02 15:04:05", ev["user_time"].(string)); err != nil {
		t.Errorf("user_time %q: %v", ev["user_time"], err)
	}
	batch := c.await(wait, "state_batch with tracker 1", func(m map[string]any) bool {
		if !isEvent("state_batch")(m) {
			return false
		}
		for _, e := range m["data"].([]any) {
			d := e.(map[string]any)
			if int64(d["source_id"].(float64)) == tr1.sourceID && d["gps"].(map[string]any)["location"] != nil {
				return true
			}
		}
		return false
	})
	for _, e := range batch["data"].([]any) {
		d := e.(map[string]any)
		if _, ok := d["outputs"]; ok {
			t.Errorf("compact state has outputs: %v", d)
		}
	}

	// The foreign tracker's fix never reaches alice.
	h.fix("dev-bob", 1, 1, 0)
	h.fix("dev-2", 52.6, 13.5, 0)
	c.await(wait, "state_batch with tracker 2", func(m map[string]any) bool {
		if !isEvent("state_batch")(m) {
			return false
		}
		for _, e := range m["data"].([]any) {
			sid := int64(e.(map[string]any)["source_id"].(float64))
			if sid == foreign.sourceID {
				t.Fatalf("foreign tracker state delivered: %v", m)
			}
			if sid == tr2.sourceID {
				return true
			}
		}
		return false
	})

	c.send(map[string]any{"action": "unsubscribe", "hash": hash, "requests": []map[string]any{{"type": "state", "trackers": []int64{tr1.id}}}})
	c.await(wait, "unsubscribe response", func(m map[string]any) bool {
		return m["type"] == "response" && m["action"] == "subscription/unsubscribe"
	})
}

// TestLifecycleAndLogout checks that admin block/unblock/delete reach the
// subscriber as lifecycle events and that signing out sends logout and
// closes the subscription.
func TestLifecycleAndLogout(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("carol", "pw-carol-secret", "UTC")
	tr := h.createTracker(uid, "Truck", "dev-t")
	h.fix("dev-t", 10, 20, 0)
	hash := h.login("carol", "pw-carol-secret")
	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	c.await(wait, "initial state", isEvent("state"))

	lifecycle := func(kind string) {
		t.Helper()
		m := c.await(wait, "lifecycle "+kind, isEvent("lifecycle"))
		d := m["data"].(map[string]any)
		if d["lifecycle_event"] != kind || int64(d["source_id"].(float64)) != tr.sourceID {
			t.Fatalf("lifecycle %v, want %s for source %d", d, kind, tr.sourceID)
		}
	}
	h.admin("POST", "/admin/trackers/"+itoa(tr.id)+"/block", map[string]any{})
	lifecycle("block")
	h.admin("POST", "/admin/trackers/"+itoa(tr.id)+"/unblock", map[string]any{})
	lifecycle("unblock")
	c.await(wait, "state after unblock", isEvent("state"))
	h.admin("POST", "/admin/trackers/"+itoa(tr.id)+"/delete", map[string]any{})
	lifecycle("corrupt")

	code, m := h.call("POST", "/v2/user/logout", map[string]any{"hash": hash}, nil)
	if code != 200 || m["success"] != true {
		t.Fatalf("logout: %d %v", code, m)
	}
	lo := c.await(wait, "logout", isEvent("logout"))
	if lo["data"] != "session closed" {
		t.Errorf("logout data %v", lo["data"])
	}
	// The connection is closed after the logout event.
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			break
		}
		if s := strings.TrimSpace(string(data)); s != "X" && s != "" {
			t.Fatalf("message after logout: %q", data)
		}
	}
	code, m = h.call("POST", "/v2/tracker/list", map[string]any{"hash": hash}, nil)
	if code == 200 || m["status"].(map[string]any)["code"].(float64) != 4 {
		t.Errorf("ended hash still works: %d %v", code, m)
	}
}

// TestPasswordChangeEndsSubscriptions: a password change is a logout too.
func TestPasswordChangeEndsSubscriptions(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("dave", "pw-dave-1-secret", "UTC")
	tr := h.createTracker(uid, "Car", "dev-d")
	hash := h.login("dave", "pw-dave-1-secret")
	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "selected", "tracker_ids": []int64{tr.id}}}))
	c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })
	h.admin("POST", "/admin/users/"+itoa(uid)+"/password", map[string]any{"password": "pw-dave-2-secret"})
	c.await(wait, "logout", isEvent("logout"))
}

// TestWebSocketErrors: bad input gets an error message in the API's shape
// and the connection carries on.
func TestWebSocketErrors(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("erin", "pw-erin-secret", "UTC")
	tr := h.createTracker(uid, "Bike", "dev-e")
	hash := h.login("erin", "pw-erin-secret")
	c := h.dialEvents(nil)
	cases := []struct {
		name string
		msg  any
		code float64
	}{
		{"not json", []byte("{nope"), 5},
		{"wrong hash format", subscribeMsg("xyz", map[string]any{"type": "state", "trackers": []int64{tr.id}}), 3},
		{"unknown hash", subscribeMsg(strings.Repeat("a", 32), map[string]any{"type": "state", "trackers": []int64{tr.id}}), 4},
		{"no requests", map[string]any{"action": "subscribe", "hash": hash}, 7},
		{"bad rate limit", subscribeMsg(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "soon"}), 7},
		{"bad target", subscribeMsg(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "some"}}), 7},
		{"too large", []byte(`{"action":"subscribe","hash":"` + strings.Repeat("a", 200000) + `"}`), 9},
	}
	for _, tc := range cases {
		c.send(tc.msg)
		m := c.await(wait, "error for "+tc.name, func(m map[string]any) bool { return m["type"] == "error" })
		status, _ := m["status"].(map[string]any)
		if status == nil || status["code"] != tc.code || status["description"] == "" {
			t.Errorf("%s: error %v, want code %v", tc.name, m, tc.code)
		}
		if _, ok := m["action"]; !ok {
			t.Errorf("%s: error has no action field: %v", tc.name, m)
		}
	}
	// Still usable after all that.
	c.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	c.await(wait, "response after errors", func(m map[string]any) bool { return m["type"] == "response" })
}

// TestHeartbeatAndFraming: idle connections get "X"; trackMessageLength
// frames every message as length|message.
func TestHeartbeatAndFraming(t *testing.T) {
	h := startServer(t, func(c *Config) { c.Heartbeat = 300 * time.Millisecond })
	q := url.Values{}
	q.Set("X-Atmosphere-TrackMessageSize", "true")
	c := h.dialEvents(q)
	// The client heartbeat "X" is swallowed: no error comes back for it.
	c.send([]byte("X"))
	got := c.readRaw(wait)
	if got != "X" && got != "1|X" {
		t.Fatalf("heartbeat frame %q", got)
	}
	c.send([]byte("{bad"))
	raw := c.readRaw(wait)
	for strings.TrimPrefix(raw, "1|") == "X" {
		raw = c.readRaw(wait)
	}
	i := strings.IndexByte(raw, '|')
	if i <= 0 || itoa(int64(len(raw[i+1:]))) != raw[:i] {
		t.Fatalf("framed message %q: length prefix does not match", raw)
	}
}

// TestShutdownAndRestart: SIGTERM-style shutdown closes WebSockets with 1001
// and the last state survives a restart.
func TestShutdownAndRestart(t *testing.T) {
	dir := t.TempDir()
	h := startServerIn(t, dir, nil)
	uid := h.createUser("frank", "pw-frank-secret", "UTC")
	tr := h.createTracker(uid, "Boat", "dev-f")
	h.fix("dev-f", 44.4, 8.9, 0)
	c := h.dialEvents(nil)
	h.stop()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	var closeErr *websocket.CloseError
	for {
		_, _, err := c.conn.ReadMessage()
		if err != nil {
			ce, ok := err.(*websocket.CloseError)
			if !ok {
				t.Fatalf("connection ended with %v, want a close frame", err)
			}
			closeErr = ce
			break
		}
	}
	if closeErr.Code != websocket.CloseGoingAway {
		t.Errorf("close code %d, want 1001", closeErr.Code)
	}

	h2 := startServerIn(t, dir, nil)
	hash := h2.login("frank", "pw-frank-secret")
	code, m := h2.call("POST", "/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": tr.id}, nil)
	if code != 200 {
		t.Fatalf("get_state after restart: %d %v", code, m)
	}
	loc := m["state"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)
	if loc["lat"].(float64) != 44.4 {
		t.Errorf("state after restart %v", loc)
	}
}

// TestOperationsEndpoints: health, readiness and metrics answer.
func TestOperationsEndpoints(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("gina", "pw-gina-secret", "UTC")
	h.createTracker(uid, "Tractor", "dev-g")
	h.fix("dev-g", 1, 2, 0)
	resp, err := http.Get(h.osmand + "/?id=nobody&lat=1&lon=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("unknown device answered %s, want 4xx", resp.Status)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(h.base + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", p, resp.Status)
		}
		if p == "/metrics" {
			for _, name := range []string{"fleetwire_ingest_total", "fleetwire_connections", "fleetwire_subscriptions", "fleetwire_events_out_total", "fleetwire_delivery_latency_seconds_bucket"} {
				if !strings.Contains(string(body), name) {
					t.Errorf("metrics lack %s", name)
				}
			}
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestIdleTimeoutAnnounced: with an idle timeout the handshake asks the
// client for heartbeats often enough, a heartbeating client stays, and a
// silent one is closed.
func TestIdleTimeoutAnnounced(t *testing.T) {
	h := startServer(t, func(c *Config) { c.IdleTimeout = 900 * time.Millisecond })
	u := "ws" + strings.TrimPrefix(h.base, "http") + "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-atmo-protocol=true&X-Atmosphere-Transport=websocket"
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, hs, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(hs), "|")
	if len(parts) != 4 || parts[1] != "300" {
		t.Fatalf("handshake %q, want a 300 ms client heartbeat", hs)
	}
	// Heartbeating for longer than the idle timeout keeps it open.
	for i := 0; i < 6; i++ {
		time.Sleep(300 * time.Millisecond)
		if err := conn.WriteMessage(websocket.TextMessage, []byte("X")); err != nil {
			t.Fatalf("closed while heartbeating: %v", err)
		}
	}
	// Answering the server's pings keeps a listening client open.
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("closed while answering pings: %v", err)
			}
			break
		}
	}
	conn.Close()
	conn, _, err = websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Silence, pings unanswered, closes it, well before our own read
	// deadline.
	conn.SetPingHandler(func(string) error { return nil })
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("silent connection still open after %s", wait)
		}
		return
	}
}

// TestPlainWebSocketClient: a client that speaks no Atmosphere at all (no
// query parameters) gets no handshake and can subscribe straight away, on
// the path without /v2 too.
func TestPlainWebSocketClient(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("plain", "pw-plain-secret", "UTC")
	tr := h.createTracker(uid, "Plain", "dev-plain")
	hash := h.login("plain", "pw-plain-secret")
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(h.base, "http")+"/event/subscription", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, conn: conn}
	defer conn.Close()
	c.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	if m := c.next(wait); m["type"] != "response" {
		t.Fatalf("first frame %v, want the response", m)
	}
	h.fix("dev-plain", 1.5, 2.5, 0)
	c.await(wait, "state", func(m map[string]any) bool {
		loc, _ := m["data"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)
		return isEvent("state")(m) && loc != nil && loc["lat"] == 1.5
	})
}
