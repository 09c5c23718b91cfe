package api

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/fleetwire/fleetwire/internal/state"
)

func TestReadings(t *testing.T) {
	e := newEnv(t, testAdminKey)
	uid := e.createUser("rex", "pw-rex-secret", "UTC")
	id, _ := e.createTracker(uid, "Tanker", "dev-rex")
	other := e.createUser("oz", "pw-oz-secret", "UTC")
	otherID, _ := e.createTracker(other, "Other", "dev-oz")
	hash := e.login("rex", "pw-rex-secret")
	on := true
	if _, err := e.reg.Apply(context.Background(), &state.Fix{DeviceID: "dev-rex", Ignition: &on,
		Attributes: map[string]string{"fuel_level": "41.5", "temperature_1": "-3.25", "odometer": "1200.5", "obd_mil_status": "0"}}); err != nil {
		t.Fatal(err)
	}
	m := mustOK(t, "readings/list", e.post("/v2/tracker/readings/list", map[string]any{"hash": hash, "tracker_id": id}))
	for _, k := range []string{"inputs", "states", "virtual_sensors", "counters"} {
		if _, ok := m[k].([]any); !ok {
			t.Fatalf("readings/list lacks %s: %v", k, m)
		}
	}
	if n := len(m["inputs"].([]any)); n != 2 {
		t.Errorf("inputs %v", m["inputs"])
	}
	in := m["inputs"].([]any)[0].(map[string]any)
	for _, k := range []string{"sensor_id", "value", "label", "units", "name", "type", "units_type", "update_time"} {
		if _, ok := in[k]; !ok {
			t.Errorf("input lacks %s: %v", k, in)
		}
	}
	vs := m["virtual_sensors"].([]any)
	if len(vs) != 1 || vs[0].(map[string]any)["value"] != "On" {
		t.Errorf("virtual sensors %v", vs)
	}
	st := m["states"].([]any)
	if len(st) != 1 || st[0].(map[string]any)["value"] != 0.0 {
		t.Errorf("states %v (numeric state values are numbers)", st)
	}
	m = mustOK(t, "readings/list fuel", e.post("/v2/tracker/readings/list", map[string]any{"hash": hash, "tracker_id": id, "sensor_type": "fuel"}))
	if len(m["inputs"].([]any)) != 1 || len(m["states"].([]any)) != 0 || len(m["counters"].([]any)) != 0 {
		t.Errorf("sensor_type=fuel: %v", m)
	}
	wantErr(t, "foreign", e.post("/v2/tracker/readings/list", map[string]any{"hash": hash, "tracker_id": otherID}), 204, 404)
	m = mustOK(t, "batch_list", e.post("/v2/tracker/readings/batch_list", map[string]any{"hash": hash, "trackers": []int64{id}}))
	if _, ok := m["result"].(map[string]any)[fmt.Sprint(id)]; !ok {
		t.Errorf("batch_list result %v", m)
	}
	wantErr(t, "batch foreign", e.post("/v2/tracker/readings/batch_list", map[string]any{"hash": hash, "trackers": []int64{id, otherID}}), 217, 400)
}

// TestJSONBodyWithFormContentType: curl -d '{...}' without a Content-Type
// header sends the form type; the JSON object is still read as JSON.
func TestJSONBodyWithFormContentType(t *testing.T) {
	e := newEnv(t, testAdminKey)
	e.createUser("cu", "pw-curl-secret", "UTC")
	a := e.do("POST", "/v2/user/auth", "application/x-www-form-urlencoded", strings.NewReader(`{"login":"cu","password":"pw-curl-secret"}`), nil)
	if a.status != 200 || a.m["success"] != true {
		t.Fatalf("user/auth with a JSON body sent as a form: %d %v", a.status, a.m)
	}
}
