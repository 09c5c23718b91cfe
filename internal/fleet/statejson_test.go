package fleet

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestAppendStateShape(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &State{
		SourceID:         100001,
		GPS:              GPS{Updated: at, SignalLevel: ptr(90), Location: &Location{Lat: -80.00012, Lng: 13.4}, Heading: 45, Speed: 19, Alt: 34, Precision: ptr(5)},
		ConnectionStatus: Active, MovementStatus: Moving, MovementStatusUpdate: at,
		Ignition: ptr(true), IgnitionUpdate: at,
		LastUpdate: at, BatteryLevel: ptr(97), BatteryUpdate: at,
		Inputs: []bool{true, false}, InputsUpdate: at,
		Additional:        map[string]Additional{"b": {Value: "x\"y", Updated: at}, "a": {Value: "é😀", Updated: at}},
		ActualTrackUpdate: at,
	}
	full := AppendState(nil, s, berlin, false)
	var m map[string]any
	if err := json.Unmarshal(full, &m); err != nil {
		t.Fatalf("not JSON: %s: %v", full, err)
	}
	for _, b := range full {
		if b >= 0x80 {
			t.Fatalf("non-ASCII byte in %s", full)
		}
	}
	if m["last_update"] != "2026-01-02 04:04:05" {
		t.Errorf("last_update %v, want Berlin time", m["last_update"])
	}
	if m["gsm"] != nil {
		t.Errorf("absent gsm must be null: %v", m["gsm"])
	}
	if _, ok := m["gps"].(map[string]any)["gsm_lbs"]; ok {
		t.Errorf("gsm_lbs present for a satellite fix: %s", full)
	}
	s.GPS.GSMLBS = true
	if g := decodeGPS(t, AppendState(nil, s, berlin, false)); g["gsm_lbs"] != true {
		t.Errorf("gsm_lbs %v for a cell-tower fix", g["gsm_lbs"])
	}
	s.GPS.GSMLBS = false
	if out, ok := m["outputs"].([]any); !ok || len(out) != 0 {
		t.Errorf("absent outputs must be []: %v", m["outputs"])
	}
	if lat := m["gps"].(map[string]any)["location"].(map[string]any)["lat"]; lat != -80.00012 {
		t.Errorf("lat %v lost precision", lat)
	}
	if v := m["additional"].(map[string]any)["a"].(map[string]any)["value"]; v != "é😀" {
		t.Errorf("additional value %q", v)
	}
	compact := AppendState(nil, s, time.UTC, true)
	var c map[string]any
	if err := json.Unmarshal(compact, &c); err != nil {
		t.Fatal(err)
	}
	want := []string{"source_id", "gps", "connection_status", "movement_status", "movement_status_update", "ignition", "ignition_update", "last_update"}
	if len(c) != len(want) {
		t.Errorf("compact keys %v, want %v", c, want)
	}
	for _, k := range want {
		if _, ok := c[k]; !ok {
			t.Errorf("compact lacks %s", k)
		}
	}
	empty := AppendState(nil, &State{SourceID: 1, GPS: GPS{Location: &Location{Lat: math.NaN()}}}, nil, false)
	if !json.Valid(empty) {
		t.Errorf("zero state not JSON: %s", empty)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "abc", "é", "😀", "\x00\x1f\"\\<>&", "\xff\xfe", "a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		for _, c := range b {
			if c >= 0x80 {
				t.Fatalf("non-ASCII output %q", b)
			}
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		want, _ := json.Marshal(s)
		var w string
		_ = json.Unmarshal(want, &w)
		if got != w {
			t.Fatalf("round trip %q → %q, want %q", s, got, w)
		}
	})
}

func BenchmarkAppendStateCompact(b *testing.B) {
	at := time.Now()
	s := &State{SourceID: 100001, GPS: GPS{Updated: at, Location: &Location{Lat: 52.520008, Lng: 13.404954}, Speed: 40, Heading: 90}, ConnectionStatus: Active, MovementStatus: Moving, MovementStatusUpdate: at, LastUpdate: at}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendState(buf[:0], s, time.UTC, true)
	}
}

func TestDates(t *testing.T) {
	at := time.Date(2024, 8, 1, 11, 45, 23, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d          Dates
		text, json string
	}{
		{Dates{Loc: berlin}, "2024-08-01 13:45:23", `"2024-08-01 13:45:23"`},
		{Dates{Loc: berlin, ISO: true}, "2024-08-01T13:45:23+02:00", `"2024-08-01T13:45:23+02:00"`},
		{Dates{Loc: time.UTC, ISO: true}, "2024-08-01T11:45:23Z", `"2024-08-01T11:45:23Z"`},
	} {
		if got := c.d.Format(at); got != c.text {
			t.Errorf("%+v Format %q, want %q", c.d, got, c.text)
		}
		if got := string(c.d.Append(nil, at)); got != c.json {
			t.Errorf("%+v Append %s, want %s", c.d, got, c.json)
		}
		if got := string(c.d.Append(nil, time.Time{})); got != "null" || c.d.Format(time.Time{}) != "" {
			t.Errorf("%+v zero time: %s %q", c.d, got, c.d.Format(time.Time{}))
		}
	}
}

func decodeGPS(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
	return m["gps"].(map[string]any)
}
