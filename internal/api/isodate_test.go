package api

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

// TestISODateTime: iso_datetime=true (JSON body, form, query) and the
// NVX-ISO-DateTime header switch every date of an answer to ISO 8601 with
// the user's offset; UTC users get "Z".
func TestISODateTime(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("iso", "pw-iso-secret", "Europe/Berlin")
	id, _ := e.createTracker(uid, "Van", "dev-iso")
	hash := e.login("iso", "pw-iso-secret")
	fixAt := time.Date(2024, 8, 1, 11, 0, 0, 0, time.UTC)
	on := true
	if _, err := e.reg.Apply(context.Background(), &state.Fix{DeviceID: "dev-iso", Time: fixAt, Ignition: &on,
		Location: &fleet.Location{Lat: 52.5, Lng: 13.4}, Attributes: map[string]string{"fuel_level": "40"}}); err != nil {
		t.Fatal(err)
	}
	const userTime, fixTime = "2024-08-01T13:45:23+02:00", "2024-08-01T13:00:00+02:00"

	m := mustOK(t, "get_state iso", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": id, "iso_datetime": true}))
	st := m["state"].(map[string]any)
	if m["user_time"] != userTime || st["gps"].(map[string]any)["updated"] != fixTime || st["last_update"] != fixTime ||
		st["ignition_update"] != fixTime || st["battery_update"] != nil {
		t.Errorf("ISO get_state %v", m)
	}
	// No date of the answer is left in the default layout.
	def := regexp.MustCompile(`"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"`)
	for _, c := range []struct {
		what string
		a    answer
	}{
		{"get_states, query", e.get("/v2/tracker/get_states", url.Values{"hash": {hash}, "trackers": {fmt.Sprint(id)}, "iso_datetime": {"true"}})},
		{"readings/list, form", e.do("POST", "/v2/tracker/readings/list", "application/x-www-form-urlencoded",
			strings.NewReader(fmt.Sprintf("hash=%s&tracker_id=%d&iso_datetime=1", hash, id)), nil)},
		{"readings/batch_list, header", e.do("POST", "/v2/tracker/readings/batch_list", "application/json",
			strings.NewReader(fmt.Sprintf(`{"hash":%q,"trackers":[%d]}`, hash, id)), map[string]string{"NVX-ISO-DateTime": "true"})},
		{"user/get_info, header", e.do("GET", "/v2/user/get_info?hash="+hash, "", nil, map[string]string{"NVX-ISO-DateTime": "TRUE"})},
	} {
		mustOK(t, c.what, c.a)
		if def.MatchString(c.a.raw) {
			t.Errorf("%s: a date in the default layout: %s", c.what, c.a.raw)
		}
		if !regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00"`).MatchString(c.a.raw) {
			t.Errorf("%s: no ISO 8601 date: %s", c.what, c.a.raw)
		}
	}
	// The parameter wins over the header; false keeps the default.
	m = mustOK(t, "parameter false, header true", e.do("POST", "/v2/tracker/get_state", "application/json",
		strings.NewReader(fmt.Sprintf(`{"hash":%q,"tracker_id":%d,"iso_datetime":false}`, hash, id)), map[string]string{"NVX-ISO-DateTime": "true"}))
	if m["user_time"] != "2024-08-01 13:45:23" {
		t.Errorf("user_time %v", m["user_time"])
	}
	wantErr(t, "bad parameter", e.post("/v2/tracker/get_state", map[string]any{"hash": hash, "tracker_id": id, "iso_datetime": "sure"}), 5, 400)
	wantErr(t, "bad header", e.do("POST", "/v2/tracker/get_state", "application/json",
		strings.NewReader(fmt.Sprintf(`{"hash":%q,"tracker_id":%d}`, hash, id)), map[string]string{"NVX-ISO-DateTime": "sure"}), 5, 400)

	// A UTC user's dates end in Z.
	e.createUser("utc", "pw-utc-secret", "UTC")
	h2 := e.login("utc", "pw-utc-secret")
	m = mustOK(t, "api key", e.post("/v2/api/key/create", map[string]any{"hash": h2, "title": "k", "iso_datetime": true}))
	if d := m["value"].(map[string]any)["create_date"]; !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(fmt.Sprint(d)) {
		t.Errorf("create_date %v", d)
	}
}
