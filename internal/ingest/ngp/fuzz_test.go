package ngp

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"unicode/utf8"
)

func FuzzParseMessage(f *testing.F) {
	for _, ex := range docExamples {
		f.Add([]byte(ex))
	}
	f.Add([]byte(`{"device_id":"d","message_time":"2026-05-04T10:00:00Z","location":{"latitude":-90,"longitude":180,"heading":360},"input_status":1e3}`))
	f.Add([]byte(`{"device_id":"d","message_time":"2026-05-04T10:00:00Z","custom_attributes":[{"type":"a","value":{"b":[null]}}]}`))
	f.Add([]byte(`{"device_id":"\u00e9","message_time":"2026-05-04T10:00:00.123456789Z","x":-0.0}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		fix, err := ParseMessage(payload, now)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || fix != nil {
				t.Fatalf("error %v (fix %v)", err, fix)
			}
			return
		}
		if !json.Valid(payload) || !utf8.Valid(payload) {
			t.Fatalf("accepted invalid input %q", payload)
		}
		if fix.DeviceID == "" || utf8.RuneCountInString(fix.DeviceID) > MaxDeviceID || fix.Time.IsZero() {
			t.Fatalf("identity %q %v", fix.DeviceID, fix.Time)
		}
		if l := fix.Location; l != nil && (math.Abs(l.Lat) > 90 || math.Abs(l.Lng) > 180) {
			t.Fatalf("location %+v", l)
		}
		if fix.Heading != nil && (*fix.Heading < 0 || *fix.Heading > 360) {
			t.Fatalf("heading %v", *fix.Heading)
		}
		if fix.Battery != nil && (*fix.Battery < 0 || *fix.Battery > 100) {
			t.Fatalf("battery %v", *fix.Battery)
		}
		if fix.Satellites != nil && (*fix.Satellites < 0 || *fix.Satellites > 64) {
			t.Fatalf("satellites %v", *fix.Satellites)
		}
		if fix.Speed != nil && *fix.Speed < 0 {
			t.Fatalf("speed %v", *fix.Speed)
		}
		for k, v := range fix.Attributes {
			if k == "" || !utf8.ValidString(v) {
				t.Fatalf("attribute %q=%q", k, v)
			}
		}
	})
}
