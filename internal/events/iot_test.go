package events

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

func (f *fixture) sensors(device string, attrs map[string]string) {
	f.t.Helper()
	speed := 12.0
	if _, err := f.reg.Apply(f.ctx, &state.Fix{DeviceID: device, Location: &fleet.Location{Lat: 5.9654133, Lng: 6.5171267}, Speed: &speed, Attributes: attrs}); err != nil {
		f.t.Fatal(err)
	}
}

func TestReadingsBatch(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("rita", "UTC")
	t1 := f.tracker(u.ID, "r1")
	f.sensors("r1", map[string]string{"lls_level_1": "225.5", "lls_level_2": "100", "temperature_1": "21.5", "odometer": "3232.9", "door": "closed"})
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "readings_batch", "target": map[string]any{"type": "all"}, "rate_limit": "1s"}))
	msgs := drain(t, c)
	if len(msgs) != 2 || msgs[0]["type"] != "response" || msgs[1]["event"] != "readings_batch" {
		t.Fatalf("subscribe: %v", msgs)
	}
	if got := fmt.Sprint(msgs[0]["data"]); got != fmt.Sprintf("map[readings_batch:map[success:true value:map[%d:normal]]]", t1.ID) {
		t.Errorf("response data %s", got)
	}
	batch := msgs[1]["data"].([]any)[0].(map[string]any)
	r := batch[fmt.Sprint(t1.ID)].(map[string]any)
	inputs := r["inputs"].([]any)
	if len(inputs) != 4 { // two tanks, the composite, a thermometer
		t.Fatalf("inputs %v", inputs)
	}
	var composite, parts int
	for _, in := range inputs {
		m := in.(map[string]any)
		if m["name"] == "composite" {
			composite++
			if m["value"] != 325.5 {
				t.Errorf("composite value %v, want 325.5", m["value"])
			}
		}
		if _, ok := m["composite_sensor_ids"]; ok {
			parts++
		}
	}
	if composite != 1 || parts != 2 {
		t.Errorf("composite %d, parts %d", composite, parts)
	}
	if c := r["counters"].([]any); len(c) != 1 || c[0].(map[string]any)["type"] != "odometer" {
		t.Errorf("counters %v", c)
	}
	if s := r["states"].([]any); len(s) != 1 || s[0].(map[string]any)["value"] != "closed" {
		t.Errorf("states %v", s)
	}

	// Only what changed, not before the rate limit.
	f.advance(2 * time.Second)
	f.sensors("r1", map[string]string{"temperature_1": "22"})
	now := *f.now.Load()
	c.flush(now.Add(-1500*time.Millisecond), nil)
	if n := c.Outbox().Len(); n != 0 {
		t.Fatalf("readings sent before the rate limit")
	}
	c.flush(now, nil)
	msgs = drain(t, c)
	if len(msgs) != 1 {
		t.Fatalf("after change: %v", msgs)
	}
	r = msgs[0]["data"].([]any)[0].(map[string]any)[fmt.Sprint(t1.ID)].(map[string]any)
	if in := r["inputs"].([]any); len(in) != 1 || in[0].(map[string]any)["value"] != 22.0 {
		t.Errorf("changed inputs %v, want only the thermometer", in)
	}
	if len(r["counters"].([]any)) != 0 || len(r["states"].([]any)) != 0 {
		t.Errorf("unchanged readings resent: %v", r)
	}

	// sensor_type and include_components filter.
	c2 := f.hub.NewClient()
	send(c2, sub(hash, map[string]any{"type": "readings_batch", "target": map[string]any{"type": "selected", "tracker_ids": []int64{t1.ID}}, "sensor_type": "fuel", "include_components": false}))
	msgs = drain(t, c2)
	r = msgs[1]["data"].([]any)[0].(map[string]any)[fmt.Sprint(t1.ID)].(map[string]any)
	if in := r["inputs"].([]any); len(in) != 1 || in[0].(map[string]any)["name"] != "composite" {
		t.Errorf("fuel without components: %v", in)
	}
	if len(r["states"].([]any)) != 0 || len(r["counters"].([]any)) != 0 {
		t.Errorf("sensor_type must drop states and counters: %v", r)
	}
}

func TestIoTMonitor(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("ivy", "UTC")
	t1 := f.tracker(u.ID, "m1")
	for i := 0; i < 14; i++ {
		attrs := map[string]string{"lls_level_1": fmt.Sprint(260 + i)}
		if i%2 == 0 {
			attrs["can_rpm"] = fmt.Sprint(1000 + i)
		}
		f.sensors("m1", attrs)
		f.advance(time.Second)
	}
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "iot_monitor", "target": map[string]any{"type": "selected", "tracker_ids": []int64{t1.ID}}, "rate_limit": "1s"}))
	msgs := drain(t, c)
	if len(msgs) != 2 || msgs[1]["event"] != "iot_monitor" {
		t.Fatalf("subscribe: %v", msgs)
	}
	if got := fmt.Sprint(msgs[0]["events"]); got != "[iot_monitor]" {
		t.Errorf("events %s", got)
	}
	vals := msgs[1]["data"].(map[string]any)["iot_last_values"].([]any)
	if len(vals) != 1 {
		t.Fatalf("iot_last_values %v", vals)
	}
	v := vals[0].(map[string]any)
	if v["tracker_id"] != float64(t1.ID) {
		t.Errorf("tracker_id %v", v["tracker_id"])
	}
	nonnull := v["nonnull_fields"].(map[string]any)
	all := v["all_fields"].(map[string]any)
	if n := len(all["lls_level_1"].([]any)); n != 12 {
		t.Errorf("all_fields queue holds %d messages, want the last 12", n)
	}
	if n := len(all["can_rpm"].([]any)); n != 12 {
		t.Errorf("all_fields can_rpm has %d entries, want 12 with nulls", n)
	}
	if n := len(nonnull["can_rpm"].([]any)); n != 6 {
		t.Errorf("nonnull_fields can_rpm has %d entries, want 6", n)
	}
	first := all["lls_level_1"].([]any)[0].(map[string]any)
	if first["value"] != "273" {
		t.Errorf("newest first: got %v", first)
	}
	if _, err := time.Parse(time.RFC3339, first["msg_time"].(string)); err != nil {
		t.Errorf("msg_time %v", first["msg_time"])
	}
	lat := nonnull["latitude"].([]any)[0].(map[string]any)["value"]
	if lat != "5.9654133" {
		t.Errorf("latitude %v", lat)
	}
}
