package ngp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 5, 4, 10, 0, 30, 0, time.UTC)

// The examples of the protocol documentation, as published.
var docExamples = map[string]string{
	"transport": `{
    "message_time": "2024-10-10T06:00:11Z",
    "device_id": "1112312212",
    "location": {
        "latitude": 34.15929687705282,
        "longitude": -118.4614133834839,
        "satellites": 3
    },
    "battery_level": 68
}`,
	"minimum": `{
    "message_time": "2026-02-05T06:00:11Z",
    "device_id": "1112312212"
}`,
	"lbs": `{
    "message_time": "2024-09-02T10:05:12Z",
    "device_id": "857378374927457",
    "version": "1.2",
    "location": {
        "latitude": 56.352100,
        "longitude": 60.128900,
        "source_type": "LBS",
        "precision": 800
    },
    "event_id": 402,
    "mobile_cells": [
        {
            "mcc": 250,
            "mnc": 0,
            "lac": 32445,
            "cell_id": 343455,
            "rssi": -78,
            "type": "LTE"
        }
    ]
}`,
	"full": `{
    "message_time": "2024-09-02T10:03:43Z",
    "device_id": "857378374927457",
    "version": "1.2",
    "location": {
        "gnss_time": "2024-09-02T10:03:41Z",
        "fix_type": "HAS_FIX",
        "latitude": 56.348579,
        "longitude": 60.12344,
        "altitude": 271,
        "satellites": 8,
        "hdop": 0.41,
        "pdop": 2.0,
        "speed": 43,
        "heading": 77,
        "source_type": "GNSS"
    },
    "event_id": 406,
    "mobile_cells": [
        {
            "mcc": 250,
            "mnc": 0,
            "lac": 32445,
            "cell_id": 343455,
            "rssi": -54,
            "type": "LTE"
        }
    ],
    "wifi_points": [
        {
            "mac": "12:33:FF:45:04:33",
            "rssi": -54,
            "age": 4002,
            "channel": 11
        }
    ],
    "is_moving": true,
    "hardware_mileage": 7382.3,
    "battery_voltage": 4.12,
    "battery_level": 93,
    "board_voltage": 13.9,
    "input_status": 1,
    "output_status": 0,
    "hardware_key": "12FFABC54234",
    "temperature_internal": 12.3,
    "temperature_2": -13.7,
    "custom_fuel": 86
}`,
	"custom": `{
    "message_time": "2024-09-02T12:23:45Z",
    "device_id": "857378374927457",
    "version": "1.0",
    "location": {
        "latitude": 34.15929687705282,
        "longitude": -118.4614133834839
    },
    "custom_fuel": 86
}`,
	"structured": `{
    "message_time": "2024-09-02T12:23:45Z",
    "device_id": "857378374927457",
    "version": "1.1a",
    "location": {
        "latitude": 34.15929687705282,
        "longitude": -118.4614133834839
    },
    "custom_fuel": 86,
    "custom_attributes": [
        {
            "type": "engine_rpm",
            "id": 1,
            "value": 2100,
            "units": "rpm"
        },
        {
            "type": "vehicle_load",
            "id": 2,
            "value": 75,
            "units": "percent"
        }
    ]
}`,
	"binary": `{"message_time":"2024-09-02T12:23:45Z","device_id":"x",
  "my_sensor_data": "SGVsbG8gd29ybGQh",
  "tachograph_log": "U29tZSB0YWNoZW9nIGxvZw==",
  "photo": "/9j/4AAQSkZJRgABAQEAYABgAAD...",
  "audio": "UklGRjIAAABXRUJQVlA4WAoAAAAQAAAA..."
}`,
}

func TestDocExamples(t *testing.T) {
	for name, ex := range docExamples {
		if _, err := ParseMessage([]byte(ex), now); err != nil {
			t.Errorf("%s example: %v", name, err)
		}
	}
}

func TestParseFullExample(t *testing.T) {
	f, err := ParseMessage([]byte(docExamples["full"]), now)
	if err != nil {
		t.Fatal(err)
	}
	if f.DeviceID != "857378374927457" || !f.Time.Equal(time.Date(2024, 9, 2, 10, 3, 43, 0, time.UTC)) || !f.ReceivedAt.Equal(now) {
		t.Errorf("identity/time: %q %v %v", f.DeviceID, f.Time, f.ReceivedAt)
	}
	if f.Location == nil || f.Location.Lat != 56.348579 || f.Location.Lng != 60.12344 || *f.Alt != 271 ||
		*f.Satellites != 8 || *f.Speed != 43 || *f.Heading != 77 || f.Accuracy != nil || *f.Battery != 93 || f.Ignition != nil {
		t.Errorf("fix fields: %+v", f)
	}
	if got := fmt.Sprint(f.Inputs); got != "[true false false false false false false false]" {
		t.Errorf("inputs %s", got)
	}
	if got := fmt.Sprint(f.Outputs); got != "[false false false false false false false false]" {
		t.Errorf("outputs %s", got)
	}
	want := map[string]string{
		"gnss_time":            "2024-09-02T10:03:41Z",
		"fix_type":             "HAS_FIX",
		"source_type":          "GNSS",
		"hdop":                 "0.41",
		"pdop":                 "2",
		"event_id":             "406",
		"event":                "Movement start",
		"mobile_cells":         `[{"mcc":250,"mnc":0,"lac":32445,"cell_id":343455,"rssi":-54,"type":"LTE"}]`,
		"wifi_points":          `[{"mac":"12:33:FF:45:04:33","rssi":-54,"age":4002,"channel":11}]`,
		"is_moving":            "true",
		"hardware_mileage":     "7382.3",
		"battery_voltage":      "4.12",
		"board_voltage":        "13.9",
		"hardware_key":         "12FFABC54234",
		"temperature_internal": "12.3",
		"temperature_2":        "-13.7",
		"custom_fuel":          "86",
	}
	if fmt.Sprint(f.Attributes) != fmt.Sprint(want) {
		t.Errorf("attributes\n got %v\nwant %v", f.Attributes, want)
	}
}

func TestParseMappings(t *testing.T) {
	parse := func(body string) map[string]any {
		t.Helper()
		f, err := ParseMessage([]byte(`{"device_id":"d","message_time":"2026-05-04T10:00:00.250Z",`+body+`}`), now)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		out := map[string]any{"attrs": f.Attributes, "time": f.Time}
		if f.Location != nil {
			out["loc"] = *f.Location
		}
		if f.Accuracy != nil {
			out["acc"] = *f.Accuracy
		}
		if f.Ignition != nil {
			out["ign"] = *f.Ignition
		}
		out["in"], out["out"] = f.Inputs, f.Outputs
		return out
	}
	if m := parse(`"location":{"latitude":1,"longitude":2,"source_type":"LBS","precision":800}`); m["acc"] != 800.0 || m["loc"] == nil {
		t.Errorf("LBS precision: %v", m)
	}
	if m := parse(`"location":{"latitude":1,"longitude":2,"satellites":2}`); m["loc"] != nil {
		t.Errorf("GNSS with 2 satellites applied: %v", m)
	}
	if m := parse(`"location":{"latitude":1,"longitude":2,"satellites":2,"source_type":"ATLAS"}`); m["loc"] == nil {
		t.Errorf("ATLAS position with 2 satellites dropped: %v", m)
	}
	for _, ft := range []string{"NO_FIX", "LAST_KNOWN_POSITION"} {
		if m := parse(`"location":{"latitude":1,"longitude":2,"fix_type":"` + ft + `"}`); m["loc"] != nil {
			t.Errorf("%s applied: %v", ft, m)
		}
	}
	if m := parse(`"location":{"satellites":0,"fix_type":"NO_FIX"}`); m["loc"] != nil {
		t.Errorf("no coordinates: %v", m)
	}
	if m := parse(`"event_id":604`); m["ign"] != false {
		t.Errorf("event 604: %v", m)
	}
	if m := parse(`"event_id":10001`); m["ign"] != nil || fmt.Sprint(m["attrs"]) != "map[event_id:10001]" {
		t.Errorf("custom event: %v", m)
	}
	if m := parse(`"input_status":257,"output_status":18446744073709551615`); len(m["in"].([]bool)) != 16 ||
		!m["in"].([]bool)[0] || !m["in"].([]bool)[8] || len(m["out"].([]bool)) != 64 {
		t.Errorf("bitmasks: %v", m)
	}
	if m := parse(`"time":"not a special name","custom_obj":{"a": [1, 2]},"custom_null":null,"big":12345678901234567890,"e":1.5e3,"analog_17":"x"`); fmt.Sprint(m["attrs"]) !=
		`map[analog_17:x big:12345678901234567890 custom_obj:{"a":[1,2]} e:1500 time:not a special name]` {
		t.Errorf("custom attributes: %v", m["attrs"])
	}
	if m := parse(`"version":"9.9","heading_note":1`); m["time"] != time.Date(2026, 5, 4, 10, 0, 0, 250e6, time.UTC) {
		t.Errorf("fractional message_time: %v", m["time"])
	}
	if m := parse(`"custom_attributes":[{"type":"engine_rpm","value":2100.5},{"type":"door","id":2,"value":"open","units":""}]`); fmt.Sprint(m["attrs"]) != "map[door:open engine_rpm:2100.5]" {
		t.Errorf("structured attributes: %v", m["attrs"])
	}
	if m := parse(`"location":{"latitude":1,"longitude":2,"heading":0,"speed":0}`); m["loc"] == nil {
		t.Errorf("heading 0: %v", m)
	}
}

func TestParseInvalid(t *testing.T) {
	base := `"device_id":"d","message_time":"2026-05-04T10:00:00Z"`
	cases := map[string]string{
		"empty":              ``,
		"array":              `[{` + base + `}]`,
		"null":               `null`,
		"string":             `"x"`,
		"trailing":           `{` + base + `} {}`,
		"truncated":          `{` + base,
		"not utf8":           "{" + base + ",\"x\":\"\xff\"}",
		"no device":          `{"message_time":"2026-05-04T10:00:00Z"}`,
		"empty device":       `{"device_id":"","message_time":"2026-05-04T10:00:00Z"}`,
		"numeric device":     `{"device_id":5,"message_time":"2026-05-04T10:00:00Z"}`,
		"long device":        `{"device_id":"` + strings.Repeat("é", 65) + `","message_time":"2026-05-04T10:00:00Z"}`,
		"no time":            `{"device_id":"d"}`,
		"offset time":        `{"device_id":"d","message_time":"2026-05-04T12:00:00+02:00"}`,
		"date only":          `{"device_id":"d","message_time":"2026-05-04"}`,
		"unix time":          `{"device_id":"d","message_time":1777888800}`,
		"version number":     `{` + base + `,"version":1.2}`,
		"location array":     `{` + base + `,"location":[1,2]}`,
		"latitude":           `{` + base + `,"location":{"latitude":90.1,"longitude":0}}`,
		"longitude":          `{` + base + `,"location":{"latitude":0,"longitude":-181}}`,
		"half coordinate":    `{` + base + `,"location":{"latitude":1}}`,
		"latitude string":    `{` + base + `,"location":{"latitude":"1","longitude":2}}`,
		"altitude":           `{` + base + `,"location":{"latitude":1,"longitude":2,"altitude":10001}}`,
		"satellites":         `{` + base + `,"location":{"latitude":1,"longitude":2,"satellites":65}}`,
		"satellites float":   `{` + base + `,"location":{"latitude":1,"longitude":2,"satellites":6.5}}`,
		"speed":              `{` + base + `,"location":{"latitude":1,"longitude":2,"speed":-1}}`,
		"heading":            `{` + base + `,"location":{"latitude":1,"longitude":2,"heading":361}}`,
		"hdop":               `{` + base + `,"location":{"hdop":-0.1}}`,
		"fix type":           `{` + base + `,"location":{"fix_type":"GOOD"}}`,
		"source type":        `{` + base + `,"location":{"source_type":"gnss"}}`,
		"gnss time":          `{` + base + `,"location":{"gnss_time":"yesterday"}}`,
		"precision":          `{` + base + `,"location":{"precision":-5}}`,
		"battery":            `{` + base + `,"battery_level":101}`,
		"battery float":      `{` + base + `,"battery_level":50.5}`,
		"event":              `{` + base + `,"event_id":"605"}`,
		"event negative":     `{` + base + `,"event_id":-1}`,
		"inputs negative":    `{` + base + `,"input_status":-1}`,
		"outputs huge":       `{` + base + `,"output_status":18446744073709551616}`,
		"outputs bool":       `{` + base + `,"output_status":true}`,
		"is_moving":          `{` + base + `,"is_moving":"yes"}`,
		"mileage":            `{` + base + `,"hardware_mileage":-1}`,
		"voltage":            `{` + base + `,"board_voltage":"12V"}`,
		"analog":             `{` + base + `,"analog_3":"1.2"}`,
		"impulses":           `{` + base + `,"impulse_counter_16":1.5}`,
		"vin":                `{` + base + `,"vin":123}`,
		"key too long":       `{` + base + `,"hardware_key":"` + strings.Repeat("k", MaxString+1) + `"}`,
		"cells object":       `{` + base + `,"mobile_cells":{"mcc":1}}`,
		"cell missing":       `{` + base + `,"mobile_cells":[{"mcc":250,"mnc":0,"lac":1}]}`,
		"cell type":          `{` + base + `,"mobile_cells":[{"mcc":250,"mnc":0,"lac":1,"cell_id":2,"type":"5G"}]}`,
		"cell rssi":          `{` + base + `,"mobile_cells":[{"mcc":250,"mnc":0,"lac":1,"cell_id":2,"rssi":10}]}`,
		"cell not object":    `{` + base + `,"mobile_cells":[1]}`,
		"wifi mac":           `{` + base + `,"wifi_points":[{"mac":"12-33-FF-45-04-33","rssi":-50}]}`,
		"wifi rssi":          `{` + base + `,"wifi_points":[{"mac":"12:33:FF:45:04:33"}]}`,
		"wifi age":           `{` + base + `,"wifi_points":[{"mac":"12:33:FF:45:04:33","rssi":-1,"age":-1}]}`,
		"structured object":  `{` + base + `,"custom_attributes":{"type":"x","value":1}}`,
		"structured no type": `{` + base + `,"custom_attributes":[{"value":1}]}`,
		"structured value":   `{` + base + `,"custom_attributes":[{"type":"x"}]}`,
		"structured units":   `{` + base + `,"custom_attributes":[{"type":"x","value":1,"units":5}]}`,
		"empty name":         `{` + base + `,"":1}`,
		"blob too long":      `{` + base + `,"custom_blob":"` + strings.Repeat("A", MaxBlob+1) + `"}`,
	}
	for name, body := range cases {
		f, err := ParseMessage([]byte(body), now)
		if !errors.Is(err, ErrInvalid) || f != nil {
			t.Errorf("%s: %v, %v; want ErrInvalid", name, f, err)
		}
	}
}
