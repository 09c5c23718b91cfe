package mqtt

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 5, 4, 10, 0, 30, 0, time.UTC)

func fmtPtr[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

func TestParsePosition(t *testing.T) {
	f, err := ParsePosition("d1", []byte(`{"lat":52.52,"lon":-13.405,"speed":42.5,"heading":-90,"alt":34.5,
		"accuracy":5,"battery":81,"sat":9,"ignition":false,"time":"2026-05-04T12:00:00+02:00","extra":{"x":[1,2]}}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if f.DeviceID != "d1" || f.Location == nil || f.Location.Lat != 52.52 || f.Location.Lng != -13.405 ||
		*f.Speed != 42.5 || *f.Heading != 270 || *f.Alt != 34.5 || *f.Accuracy != 5 || *f.Battery != 81 ||
		*f.Satellites != 9 || *f.Ignition || !f.Time.Equal(time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)) ||
		!f.ReceivedAt.Equal(now) || f.Attributes != nil {
		t.Errorf("fix %+v", f)
	}

	f, err = ParsePosition("d1", []byte(` { "lon" : 2 , "lat" : 1, "speed": -1, "accuracy": -1, "alt": null, "time": 1777888800 } `), now)
	if err != nil {
		t.Fatal(err)
	}
	if f.Speed != nil || f.Accuracy != nil || f.Alt != nil || f.Heading != nil || f.Satellites != nil ||
		f.Ignition != nil || f.Battery != nil || !f.Time.Equal(time.Unix(1777888800, 0)) {
		t.Errorf("sparse fix: speed %s acc %s alt %s time %v", fmtPtr(f.Speed), fmtPtr(f.Accuracy), fmtPtr(f.Alt), f.Time)
	}

	f, err = ParsePosition("d1", []byte(`{"lat":1,"lon":2,"time":1777888800123}`), now)
	if err != nil || !f.Time.Equal(time.UnixMilli(1777888800123)) {
		t.Errorf("millisecond time: %v %v", f, err)
	}
	f, err = ParsePosition("d1", []byte(`{"lat":1,"lon":2,"time":1777888800.5}`), now)
	if err != nil || !f.Time.Equal(time.Unix(1777888800, 5e8)) {
		t.Errorf("fractional time: %v %v", f, err)
	}
	f, err = ParsePosition("d1", []byte(`{"lat":1,"lon":2,"heading":720.5}`), now)
	if err != nil || *f.Heading != 0.5 {
		t.Errorf("heading normalised: %v %v", f, err)
	}

	bad := []string{
		``, `null`, `[]`, `"x"`, `{`, `{"lat":1,"lon":2`, `{"lat":1,"lon":2}x`, `{"lat":1,"lon":2}{}`,
		`{"lat":1}`, `{"lon":1}`, `{}`,
		`{"lat":91,"lon":0}`, `{"lat":0,"lon":-180.5}`, `{"lat":"1","lon":2}`,
		`{"lat":1,"lon":2,"speed":"fast"}`, `{"lat":1,"lon":2,"sat":2.5}`, `{"lat":1,"lon":2,"sat":-1}`,
		`{"lat":1,"lon":2,"ignition":1}`, `{"lat":1,"lon":2,"time":"yesterday"}`, `{"lat":1,"lon":2,"time":-5}`,
		`{"lat":1,"lon":2,"time":true}`, `{"lat":1e999,"lon":2}`, `{"lat":01,"lon":2}`, `{"lat":1.,"lon":2}`,
		`{"lat":1,"lon":2,}`, `{"lat":1 "lon":2}`, `{lat:1,"lon":2}`, `{"lat":1,"lon":2,"x":tru}`,
		`{"lat":1,"lon":2,"x":"\q"}`, "{\"lat\":1,\"lon\":2,\"x\":\"a\x01\"}", `{"lat":1,"lon":2,"x":[1,}`,
		`{"lat":-,"lon":2}`, `{"lat":1e,"lon":2}`, `{"lat":1,"lon":2,"x":"\u12"}`,
		`{"lat":1,"lon":2,"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	}
	for _, p := range bad {
		if f, err := ParsePosition("d1", []byte(p), now); err == nil || !errors.Is(err, ErrBadPayload) {
			t.Errorf("ParsePosition(%q) = %+v, %v; want ErrBadPayload", p, f, err)
		}
	}
	if _, err := ParsePosition("d1", []byte(`{"lat":1,"lon":2,"pad":"`+strings.Repeat("x", MaxPayload)+`"}`), now); err == nil {
		t.Error("oversized payload accepted")
	}
}

func TestParseOwnTracks(t *testing.T) {
	f, err := ParseOwnTracks("phone", []byte(`{"_type":"location","tid":"al","lat":48.1,"lon":11.5,"tst":1777888800,
		"vel":12,"cog":270,"alt":520,"batt":55,"acc":15,"bs":1,"conn":"w","inregions":["home"]}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if f.DeviceID != "phone" || f.Location.Lat != 48.1 || f.Location.Lng != 11.5 || *f.Speed != 12 || *f.Heading != 270 ||
		*f.Alt != 520 || *f.Battery != 55 || *f.Accuracy != 15 || !f.Time.Equal(time.Unix(1777888800, 0)) {
		t.Errorf("fix %+v", f)
	}
	for _, p := range []string{
		`{"_type":"transition","event":"enter","lat":1,"lon":2,"tst":1}`,
		`{"_type":"waypoint","lat":"x"}`,
		`{"_type":"lwt","tst":1}`,
		`{"_type":"encrypted","data":"abc"}`,
	} {
		if _, err := ParseOwnTracks("phone", []byte(p), now); !errors.Is(err, ErrIgnored) {
			t.Errorf("ParseOwnTracks(%q): %v, want ErrIgnored", p, err)
		}
	}
	for _, p := range []string{
		`{"lat":1,"lon":2}`, `{"_type":5,"lat":1,"lon":2}`, `{"_type":"location","lat":1}`,
		`{"_type":"location","lat":1,"lon":2,"tst":"now"}`, `{"_type":"location","lat":1,"lon":2,"vel":"x"}`,
		`{"_type":"transition"`, `[{"_type":"location"}]`,
	} {
		if _, err := ParseOwnTracks("phone", []byte(p), now); !errors.Is(err, ErrBadPayload) {
			t.Errorf("ParseOwnTracks(%q): %v, want ErrBadPayload", p, err)
		}
	}
}

func TestParseReadings(t *testing.T) {
	f, err := ParseReadings("d", []byte(`{"fuel_level":41.5,"temperature":-21.30,"rpm":2100,"big":1e21,"tiny":1e-7,
		"door":"open","alarm":false,"gone":null,"esc\u00e9":"caf\u00e9 \"x\""}`), now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"fuel_level": "41.5", "temperature": "-21.3", "rpm": "2100", "big": "1000000000000000000000",
		"tiny": "0.0000001", "door": "open", "alarm": "false", "escé": `café "x"`}
	if fmt.Sprint(f.Attributes) != fmt.Sprint(want) {
		t.Errorf("attributes %v\nwant %v", f.Attributes, want)
	}
	if f.Location != nil || !f.ReceivedAt.Equal(now) || !f.Time.IsZero() {
		t.Errorf("fix %+v", f)
	}
	if f, err := ParseReadings("d", []byte(`{}`), now); err != nil || f.Attributes != nil {
		t.Errorf("empty readings: %+v %v", f, err)
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range MaxReadings + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"s%d":%d`, i, i)
	}
	many.WriteString("}")
	for _, p := range []string{
		`{"a":[1]}`, `{"a":{"b":1}}`, `{"":1}`, `{"` + strings.Repeat("n", MaxNameLen+1) + `":1}`,
		`{"a":"` + strings.Repeat("v", MaxValueLen+1) + `"}`, many.String(), "{\"a\":\"\xff\"}", `[1]`,
	} {
		if _, err := ParseReadings("d", []byte(p), now); !errors.Is(err, ErrBadPayload) {
			t.Errorf("ParseReadings(%.60q): %v, want ErrBadPayload", p, err)
		}
	}
}

func TestParseIO(t *testing.T) {
	f, err := ParseIO("d", []byte(`{"inputs":[true,false,true],"outputs":[]}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.Inputs) != "[true false true]" || f.Outputs == nil || len(f.Outputs) != 0 {
		t.Errorf("io %v %v", f.Inputs, f.Outputs)
	}
	f, err = ParseIO("d", []byte(`{"outputs":[false, true ],"inputs":null}`), now)
	if err != nil || f.Inputs != nil || fmt.Sprint(f.Outputs) != "[false true]" {
		t.Errorf("outputs only: %+v %v", f, err)
	}
	for _, p := range []string{
		`{}`, `{"inputs":null}`, `{"inputs":[1,0]}`, `{"inputs":"1010"}`, `{"inputs":[true,]}`,
		`{"inputs":[` + strings.Repeat("true,", MaxIO) + `true]}`,
	} {
		if _, err := ParseIO("d", []byte(p), now); !errors.Is(err, ErrBadPayload) {
			t.Errorf("ParseIO(%q): %v, want ErrBadPayload", p, err)
		}
	}
}

// The scanner must never accept what encoding/json rejects.
func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, `{"a":1}`, `{"a":-0.5e+3}`, `{"a":"\ud83d\ude00"}`, `{"a":[1,{"b":[]}]}`, `{"a":null,"b":true}`,
		`{"a":1,}`, `{"a":+1}`, `{"a":.5}`, `{"a":0x1}`, `{"a":NaN}`, `{"a":"x}`, `{"a" 1}`, `{,}`, `{"a":[1 2]}`,
		`{"a":{"b"}}`, `{"a":{"b":1,}}`, `{"a":[,]}`, ` {"a":1} `, "{\"a\":1}\n", `{"a":00}`, `{"a":-}`,
	}
	for _, c := range cases {
		got := object([]byte(c), func([]byte, value) error { return nil }) == nil
		if want := json.Valid([]byte(c)); got != want {
			t.Errorf("object(%q) accepted=%v, encoding/json says %v", c, got, want)
		}
	}
}

func TestParseTopic(t *testing.T) {
	for _, c := range []struct {
		topic string
		want  error
	}{
		{"fleetwire//position", ErrBadPayload},
		{"fleetwire/d", ErrBadPayload},
		{"fleetwire/d/other", ErrIgnored},
		{"fleetwire/d/node/x", ErrIgnored},
		{"owntracks/u", ErrBadPayload},
		{"owntracks//d", ErrBadPayload},
		{"elsewhere/d/position", ErrIgnored},
		{"ngp/", ErrBadPayload},
	} {
		if _, _, err := parseTopic(c.topic, []byte(`{"lat":1,"lon":2,"_type":"location"}`), now); !errors.Is(err, c.want) {
			t.Errorf("parseTopic(%q): %v, want %v", c.topic, err, c.want)
		}
	}
	f, isNGP, err := parseTopic("ngp/123", []byte(`{"device_id":"123","message_time":"2026-05-04T10:00:00Z"}`), now)
	if err != nil || !isNGP || f.DeviceID != "123" {
		t.Errorf("ngp topic: %+v %v %v", f, isNGP, err)
	}
	if _, _, err := parseTopic("ngp/123", []byte(`{"device_id":"456","message_time":"2026-05-04T10:00:00Z"}`), now); !errors.Is(err, ErrBadPayload) {
		t.Errorf("ngp device mismatch: %v", err)
	}
	if _, _, err := parseTopic("ngp/123", []byte(`{"device_id":"123"}`), now); !errors.Is(err, ErrBadPayload) {
		t.Errorf("ngp without message_time: %v", err)
	}
}

func TestParseAllocations(t *testing.T) {
	pos := []byte(`{"lat":52.52,"lon":13.405,"speed":42.5,"heading":90,"alt":34,"accuracy":5,"battery":81,"sat":9,"ignition":true,"time":1777888800}`)
	if n := testing.AllocsPerRun(200, func() { _, _ = ParsePosition("d", pos, now) }); n > 1 {
		t.Errorf("ParsePosition allocates %v times, want 1", n)
	}
	ot := []byte(`{"_type":"location","lat":48.1,"lon":11.5,"tst":1777888800,"vel":12,"cog":270,"alt":520,"batt":55,"acc":15,"tid":"al"}`)
	if n := testing.AllocsPerRun(200, func() { _, _ = ParseOwnTracks("d", ot, now) }); n > 1 {
		t.Errorf("ParseOwnTracks allocates %v times, want 1", n)
	}
}

func BenchmarkParsePosition(b *testing.B) {
	pos := []byte(`{"lat":52.52,"lon":13.405,"speed":42.5,"heading":90,"alt":34,"accuracy":5,"battery":81,"sat":9,"ignition":true,"time":"2026-05-04T10:00:00Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePosition("d", pos, now); err != nil {
			b.Fatal(err)
		}
	}
}
