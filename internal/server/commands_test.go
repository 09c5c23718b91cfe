package server

import (
	"reflect"
	"testing"
	"time"
)

// wantAPIError checks an error answer's HTTP status and code.
func wantAPIError(t *testing.T, what string, status int, m map[string]any, wantStatus, wantCode int) {
	t.Helper()
	st, _ := m["status"].(map[string]any)
	if status != wantStatus || m["success"] != false || st["code"] != float64(wantCode) || st["description"] == "" {
		t.Errorf("%s: HTTP %d %v, want HTTP %d code %d", what, status, m, wantStatus, wantCode)
	}
}

// TestCommandsNeedAConnectedDevice: the four command actions answer 213
// once the tracker's connection status is offline, and work again when
// it reports; raw_command/send names the bad parameter in "errors".
func TestCommandsNeedAConnectedDevice(t *testing.T) {
	h := startServer(t, func(c *Config) {
		c.MQTTListen = "127.0.0.1:0"
		c.State.IdleAfter = 500 * time.Millisecond
		c.State.OfflineAfter = 1500 * time.Millisecond
		c.State.TickEvery = 20 * time.Millisecond
	})
	uid := h.createUser("cmd-user", "pw-cmd-secret", "UTC")
	other := h.createUser("cmd-other", "pw-other-secret", "UTC")
	tr := h.createTracker(uid, "Truck", "cmd-dev")
	foreign := h.createTracker(other, "Other", "cmd-foreign")
	hash := h.login("cmd-user", "pw-cmd-secret")

	commands := map[string]map[string]any{
		"/v2/tracker/output/set":       {"output": 1, "enable": true},
		"/v2/tracker/output/set_all":   {"outputs": []bool{true, false}},
		"/v2/tracker/raw_command/send": {"command": "AT+GTRTO=gv200,A,,,,,,0001$", "type": "text"},
		"/v2/tracker/send_command":     {"command": map[string]any{"name": "set_special_settings_command"}},
	}
	send := func(path string, id int64, params map[string]any) (int, map[string]any) {
		body := map[string]any{"hash": hash, "tracker_id": id}
		for k, v := range params {
			body[k] = v
		}
		return h.call("POST", path, body, nil)
	}
	for path, params := range commands {
		h.fix(tr.device, 52.5, 13.4, 0) // connected: it just reported
		if code, m := send(path, tr.id, params); code != 200 || m["success"] != true {
			t.Errorf("%s to a connected tracker: %d %v", path, code, m)
		}
	}

	h.fix(tr.device, 52.5, 13.4, 0)
	for _, c := range []struct {
		what   string
		params map[string]any
		want   []any
	}{
		{"non-hex", map[string]any{"command": "zz", "type": "hex"}, []any{map[string]any{"parameter": "command", "error": "Non-hex string"}}},
		{"odd hex", map[string]any{"command": "abc", "type": "hex"}, []any{map[string]any{"parameter": "command", "error": "Non-hex string"}}},
		{"no command", map[string]any{"type": "text"}, []any{map[string]any{"parameter": "command", "error": "Required"}}},
		{"bad type", map[string]any{"command": "x", "type": "binary"}, []any{map[string]any{"parameter": "type", "error": `Must be "text" or "hex"`}}},
	} {
		code, m := send("/v2/tracker/raw_command/send", tr.id, c.params)
		wantAPIError(t, "raw_command/send "+c.what, code, m, 400, 7)
		if !reflect.DeepEqual(m["errors"], c.want) {
			t.Errorf("raw_command/send %s: errors %v, want %v", c.what, m["errors"], c.want)
		}
	}
	code, m := send("/v2/tracker/raw_command/send", foreign.id, commands["/v2/tracker/raw_command/send"])
	wantAPIError(t, "raw_command/send to another user's tracker", code, m, 400, 201)
	code, m = send("/v2/tracker/output/set", foreign.id, commands["/v2/tracker/output/set"])
	wantAPIError(t, "output/set to another user's tracker", code, m, 404, 204)

	// Quiet past OfflineAfter: offline, and every command is 213.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, m := h.call("POST", "/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": tr.id}, nil)
		if m["state"].(map[string]any)["connection_status"] == "offline" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tracker never went offline: %v", m)
		}
	}
	for path, params := range commands {
		code, m := send(path, tr.id, params)
		wantAPIError(t, path+" to an offline tracker", code, m, 400, 213)
	}
	h.fix(tr.device, 52.5, 13.4, 0)
	if code, m := send("/v2/tracker/output/set", tr.id, commands["/v2/tracker/output/set"]); code != 200 {
		t.Errorf("output/set after the tracker reported again: %d %v", code, m)
	}
}
