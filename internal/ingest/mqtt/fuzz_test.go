package mqtt

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/fleetwire/fleetwire/internal/state"
)

var fuzzSeeds = []string{
	`{"lat":52.52,"lon":13.405,"speed":42.5,"heading":90,"alt":34,"accuracy":5,"battery":81,"sat":9,"ignition":true,"time":"2026-05-04T10:00:00Z"}`,
	`{"lat":1,"lon":2,"time":1777888800}`,
	`{"_type":"location","lat":48.1,"lon":11.5,"tst":1777888800,"vel":12,"cog":270,"alt":520,"batt":55,"acc":15}`,
	`{"_type":"transition","lat":1,"lon":2}`,
	`{"a":"\u00e9\ud83d\ude00","b":[{"c":null}],"lat":-90,"lon":180}`,
	`{"lat":1e308,"lon":-0}`, `{`, `[]`, `null`, `{"lat":"`, "{\"lat\":1,\"lon\":2}\x00",
}

// checkFix verifies what every accepted position must satisfy.
func checkFix(t *testing.T, payload []byte, f *state.Fix, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrBadPayload) && !errors.Is(err, ErrIgnored) {
			t.Fatalf("error %v wraps neither ErrBadPayload nor ErrIgnored", err)
		}
		if f != nil {
			t.Fatalf("fix %+v returned with error %v", f, err)
		}
		return
	}
	if !json.Valid(payload) {
		t.Fatalf("accepted invalid JSON %q", payload)
	}
	if f == nil || f.Location == nil || f.DeviceID != "dev" {
		t.Fatalf("fix %+v", f)
	}
	if l := f.Location; math.Abs(l.Lat) > 90 || math.Abs(l.Lng) > 180 {
		t.Fatalf("location out of range: %+v", l)
	}
	if f.Heading != nil && (*f.Heading < 0 || *f.Heading >= 360) {
		t.Fatalf("heading %v", *f.Heading)
	}
	if f.Speed != nil && *f.Speed < 0 {
		t.Fatalf("speed %v", *f.Speed)
	}
	if f.Satellites != nil && *f.Satellites < 0 {
		t.Fatalf("satellites %v", *f.Satellites)
	}
	for _, p := range []*float64{f.Speed, f.Heading, f.Alt, f.Accuracy, f.Battery} {
		if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
			t.Fatalf("non-finite value in %+v", f)
		}
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fix, err := ParsePosition("dev", payload, now)
		checkFix(t, payload, fix, err)
		// The other flat parsers share the scanner; they must not panic
		// and must not accept invalid JSON either.
		if _, err := ParseReadings("dev", payload, now); err == nil && !json.Valid(payload) {
			t.Fatalf("ParseReadings accepted invalid JSON %q", payload)
		}
		if _, err := ParseIO("dev", payload, now); err == nil && !json.Valid(payload) {
			t.Fatalf("ParseIO accepted invalid JSON %q", payload)
		}
	})
}

func FuzzParseOwnTracks(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	for _, s := range traccarOwnTracksSamples {
		f.Add([]byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fix, err := ParseOwnTracks("dev", payload, now)
		if errors.Is(err, ErrIgnored) && !json.Valid(payload) {
			t.Fatalf("ignored invalid JSON %q instead of rejecting it", payload)
		}
		checkFix(t, payload, fix, err)
	})
}
