package server

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// awaitError reads the next error message and checks its action and code.
func (c *wsClient) awaitError(what string, code int) map[string]any {
	c.t.Helper()
	m := c.await(wait, what, func(m map[string]any) bool { return m["type"] == "error" || m["type"] == "response" })
	st, _ := m["status"].(map[string]any)
	if m["type"] != "error" || m["action"] != "subscription/subscribe" || st["code"] != float64(code) || st["description"] == "" {
		c.t.Errorf("%s: got %v, want error %d", what, m, code)
	}
	return m
}

// TestSubscribeRequestErrors: an unknown sensor_type and null tracker ids
// are error 7, over the WebSocket; the connection carries on.
func TestSubscribeRequestErrors(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("req-user", "pw-req-secret", "UTC")
	tr := h.createTracker(uid, "Van", "req-dev")
	hash := h.login("req-user", "pw-req-secret")
	c := h.dialEvents(nil)
	for _, bad := range []struct {
		what string
		req  map[string]any
	}{
		{"unknown sensor_type", map[string]any{"type": "readings_batch", "target": map[string]any{"type": "all"}, "sensor_type": "bogus"}},
		{"sensor_type of wrong type", map[string]any{"type": "readings_batch", "target": map[string]any{"type": "all"}, "sensor_type": 5}},
		{"null in trackers", map[string]any{"type": "state", "trackers": []any{nil}}},
		{"null after an id", map[string]any{"type": "state", "trackers": []any{tr.id, nil}}},
		{"null in tracker_ids", map[string]any{"type": "state_batch", "target": map[string]any{"type": "selected", "tracker_ids": []any{nil}}}},
	} {
		c.send(subscribeMsg(hash, bad.req))
		c.awaitError(bad.what, 7)
	}
	c.send(map[string]any{"action": "subscribe", "hash": hash, "trackers": []any{nil}, "events": []string{"state"}})
	c.awaitError("null in the deprecated trackers", 7)

	// Documented types are fine, and the connection carries on.
	c.send(subscribeMsg(hash, map[string]any{"type": "readings_batch", "target": map[string]any{"type": "all"}, "sensor_type": "virtual_ignition"}))
	r := c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" })
	if rb, _ := r["data"].(map[string]any)["readings_batch"].(map[string]any); rb["success"] != true {
		t.Errorf("readings_batch with sensor_type virtual_ignition: %v", r)
	}
}

// TestReadingsSensorTypeREST: the REST readings actions refuse an unknown
// sensor_type with 7.
func TestReadingsSensorTypeREST(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("rs-user", "pw-rs-secret", "UTC")
	tr := h.createTracker(uid, "Van", "rs-dev")
	hash := h.login("rs-user", "pw-rs-secret")
	for _, c := range []struct {
		path   string
		params map[string]any
	}{
		{"/v2/tracker/readings/list", map[string]any{"tracker_id": tr.id}},
		{"/v2/tracker/readings/batch_list", map[string]any{"trackers": []int64{tr.id}}},
	} {
		for sensor, ok := range map[string]bool{"bogus": false, "Fuel": false, "fuel": true, "state": true, "": true} {
			body := map[string]any{"hash": hash, "sensor_type": sensor}
			for k, v := range c.params {
				body[k] = v
			}
			code, m := h.call("POST", c.path, body, nil)
			if ok {
				if code != http.StatusOK {
					t.Errorf("%s sensor_type %q: %d %v", c.path, sensor, code, m)
				}
				continue
			}
			wantAPIError(t, c.path+" sensor_type "+sensor, code, m, 400, 7)
			if d, _ := m["status"].(map[string]any)["description"].(string); !strings.Contains(d, "sensor_type") {
				t.Errorf("%s: description %q does not name sensor_type", c.path, d)
			}
		}
	}
}

// TestInitialReadingsBatch: the first readings_batch holds every
// non-blocked tracker of the subscription, as batch_list does, with
// empty lists for a tracker without readings and no NULL fields; a JSON
// number is a rate_limit in seconds.
func TestInitialReadingsBatch(t *testing.T) {
	h := startServer(t, nil)
	uid := h.createUser("rb-user", "pw-rb-secret", "UTC")
	withReadings := h.createTracker(uid, "Tanker", "rb-fuel")
	quiet := h.createTracker(uid, "Quiet", "rb-quiet")
	blocked := h.createTracker(uid, "Blocked", "rb-blocked")
	h.admin("POST", "/admin/trackers/"+itoa(blocked.id)+"/block", nil)
	hash := h.login("rb-user", "pw-rb-secret")
	resp, err := http.Get(h.osmand + "/?id=rb-fuel&lat=52.5&lon=13.4&fuel_level=41.5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "readings_batch", "target": map[string]any{"type": "all"}, "rate_limit": 2}))
	r := c.await(wait, "response", func(m map[string]any) bool { return m["type"] == "response" || m["type"] == "error" })
	if rb, _ := r["data"].(map[string]any)["readings_batch"].(map[string]any); r["type"] != "response" || rb["success"] != true {
		t.Fatalf("rate_limit 2: %v", r)
	}
	ev := c.await(wait, "initial readings_batch", isEvent("readings_batch"))
	batch := ev["data"].([]any)[0].(map[string]any)
	if len(batch) != 2 || batch[itoa(withReadings.id)] == nil || batch[itoa(quiet.id)] == nil {
		t.Fatalf("initial batch holds %v, want trackers %d and %d", keysOf(batch), withReadings.id, quiet.id)
	}
	q := batch[itoa(quiet.id)].(map[string]any)
	for _, k := range []string{"inputs", "states", "virtual_sensors", "counters"} {
		if l, ok := q[k].([]any); !ok || len(l) != 0 {
			t.Errorf("quiet tracker %s = %v, want []", k, q[k])
		}
	}
	in := batch[itoa(withReadings.id)].(map[string]any)["inputs"].([]any)
	if len(in) != 1 {
		t.Fatalf("inputs %v", in)
	}
	for k, v := range in[0].(map[string]any) {
		if v == nil {
			t.Errorf("input field %s is NULL; NULL fields are omitted", k)
		}
	}

	c.send(subscribeMsg(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": true}))
	e := c.awaitError("rate_limit true", 7)
	if d, _ := e["status"].(map[string]any)["description"].(string); !strings.Contains(d, "rate_limit") {
		t.Errorf("description %q does not name rate_limit", d)
	}
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestGSMLBS: a cell-tower fix (NGP source_type LBS) is gps.gsm_lbs true
// in REST and events; a satellite fix after it is not.
func TestGSMLBS(t *testing.T) {
	h := startServer(t, func(c *Config) { c.NGPListen = "127.0.0.1:0" })
	uid := h.createUser("lbs-user", "pw-lbs-secret", "UTC")
	tr := h.createTracker(uid, "Phone", "lbs-dev")
	hash := h.login("lbs-user", "pw-lbs-secret")
	c := h.dialEvents(nil)
	c.send(subscribeMsg(hash, map[string]any{"type": "state", "trackers": []int64{tr.id}}))
	c.await(wait, "initial state", isEvent("state"))

	now := time.Now().UTC()
	lbs := `{"message_time":"` + now.Add(-2*time.Second).Format(time.RFC3339) + `","device_id":"lbs-dev","version":"1.2",
		"location":{"latitude":56.3521,"longitude":60.1289,"source_type":"LBS","precision":800}}`
	if code := postRaw(t, "http://"+h.srv.NGPAddr()+"/", lbs); code != 200 {
		t.Fatalf("LBS message answered %d", code)
	}
	ev := c.await(wait, "state of the LBS fix", func(m map[string]any) bool {
		g, _ := m["data"].(map[string]any)["gps"].(map[string]any)
		return isEvent("state")(m) && g["location"] != nil
	})
	if g := ev["data"].(map[string]any)["gps"].(map[string]any); g["gsm_lbs"] != true || g["precision"] != 800.0 {
		t.Errorf("LBS fix in the state event: gps %v", g)
	}
	_, m := h.call("POST", "/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": tr.id}, nil)
	if g := m["state"].(map[string]any)["gps"].(map[string]any); g["gsm_lbs"] != true {
		t.Errorf("LBS fix in get_state: gps %v", g)
	}

	gnss := `{"message_time":"` + now.Format(time.RFC3339) + `","device_id":"lbs-dev","version":"1.2",
		"location":{"latitude":56.35,"longitude":60.12,"satellites":9,"source_type":"GNSS"}}`
	if code := postRaw(t, "http://"+h.srv.NGPAddr()+"/", gnss); code != 200 {
		t.Fatalf("GNSS message answered %d", code)
	}
	ev = c.await(wait, "state of the GNSS fix", func(m map[string]any) bool {
		g, _ := m["data"].(map[string]any)["gps"].(map[string]any)
		loc, _ := g["location"].(map[string]any)
		return isEvent("state")(m) && loc != nil && loc["lat"] == 56.35
	})
	if g := ev["data"].(map[string]any)["gps"].(map[string]any); g["gsm_lbs"] != nil {
		t.Errorf("satellite fix still gsm_lbs: gps %v", g)
	}
}
