package osmand

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// traccarWant is what a Traccar decoder test sample decodes to here.
// Nil pointers must be nil; attrs must be present with these values and
// absent lists attributes that must not be.
type traccarWant struct {
	status   int // the handler's answer
	device   string
	loc      *fleet.Location
	time     time.Time // zero: the time of receipt
	speed    *float64  // km/h
	heading  *float64
	alt      *float64
	accuracy *float64
	battery  *float64
	ignition *bool
	attrs    map[string]string
	absent   []string
}

func bp(v bool) *bool { return &v }

// traccarOsmAndSamples are the inputs of Traccar's
// OsmAndProtocolDecoderTest (traccar/traccar,
// src/test/java/org/traccar/protocol/OsmAndProtocolDecoderTest.java), in
// its order, with what they decode to here. Traccar's verifyPosition
// asks for a position with a valid time, location, course and speed,
// verifyNotNull for a position, verifyNull for none, verifyAttribute for
// one attribute's value.
var traccarOsmAndSamples = []struct {
	name, method, contentType, target, body string
	want                                    traccarWant
}{
	// testDecodeJson
	{"json motionchange", "POST", "application/json", "/",
		`{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}`,
		traccarWant{status: 200, device: "48241179", loc: &fleet.Location{Lat: 37.4219983, Lng: -122.084},
			time: time.Date(2025, 6, 15, 13, 45, 12, 862e6, time.UTC), speed: fp(0), alt: fp(5), accuracy: fp(5), battery: fp(100),
			attrs: map[string]string{"motion": "false", "odometer": "0", "event": "motionchange", "activity": "still"}, absent: []string{"_"}}},
	{"json extras", "POST", "application/json", "/",
		`{"location":{"timestamp":"2025-06-15T13:45:12.862Z","coords":{"latitude":37.4219983,"longitude":-122.084,"accuracy":5,"speed":0,"heading":-1,"altitude":5},"is_moving":false,"odometer":0,"event":"motionchange","battery":{"level":1,"is_charging":false},"activity":{"type":"still"},"extras":{"device_string_test":"long_device_id","device_bool_test":true,"device_bool_false_test":false,"device_integer_test":1,"device_integer_twelve_test":12,"device_double_test":1.345,"device_very_long_double_test":1763636.3442},"_":"&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&"},"device_id":"48241179"}`,
		traccarWant{status: 200, device: "48241179", loc: &fleet.Location{Lat: 37.4219983, Lng: -122.084},
			time: time.Date(2025, 6, 15, 13, 45, 12, 862e6, time.UTC), speed: fp(0), alt: fp(5), accuracy: fp(5), battery: fp(100),
			attrs: map[string]string{"device_integer_twelve_test": "12", "device_string_test": "long_device_id",
				"device_bool_test": "true", "device_bool_false_test": "false", "device_integer_test": "1",
				"device_double_test": "1.345", "device_very_long_double_test": "1763636.3442"}}},
	{"json mock location", "POST", "application/json", "/",
		`{"location":{"extras":{},"mock":true,"coords":{"speed_accuracy":-1,"speed":-1,"longitude":-122.406417,"ellipsoidal_altitude":0,"floor":null,"heading_accuracy":-1,"latitude":37.785834000000001,"accuracy":5,"altitude_accuracy":-1,"altitude":0,"heading":-1},"is_moving":false,"age":188,"odometer":0,"uuid":"2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8","event":"motionchange","battery":{"level":-1,"is_charging":false},"activity":{"type":"unknown","confidence":100},"timestamp":"2025-05-09T04:11:30.579Z"},"device_id":"658765"}`,
		traccarWant{status: 200, device: "658765", loc: &fleet.Location{Lat: 37.785834, Lng: -122.406417},
			time: time.Date(2025, 5, 9, 4, 11, 30, 579e6, time.UTC), alt: fp(0), accuracy: fp(5),
			attrs: map[string]string{"mock": "true", "activity": "unknown", "event": "motionchange"}}},
	{"json moving", "POST", "application/json", "/",
		`{"location":{"event":"motionchange","is_moving":false,"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},"activity":{"type":"still","confidence":100},"battery":{"is_charging":false,"level":0.79},"extras":{}},"device_id":"8737767034"}`,
		traccarWant{status: 200, device: "8737767034", loc: &fleet.Location{Lat: -6.1148096, Lng: 106.6837015},
			time: time.Date(2021, 7, 21, 8, 6, 34, 444e6, time.UTC), speed: fp(18.67 * 3.6), heading: fp(63), alt: fp(35.7),
			accuracy: fp(3.8), battery: fp(79)}},

	// testDecodeQuery
	{"cells and access points", "GET", "",
		"/?id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70", "",
		traccarWant{status: 200, device: "123456", time: time.Unix(1377177267, 0).UTC(), attrs: map[string]string{
			"mobile_cells": `[{"mcc":257,"mnc":2,"lac":16,"cell_id":2224},{"mcc":257,"mnc":2,"lac":16,"cell_id":2223,"rssi":-90}]`,
			"wifi_points":  `[{"mac":"00:14:22:01:23:45","rssi":-80},{"mac":"00:1C:B3:09:85:15","rssi":-70}]`,
		}, absent: []string{"cell", "wifi"}}},
	{"no device id", "GET", "", "/?timestamp=1377177267&lat=60.0&lon=30.0", "", traccarWant{status: 400}},
	{"iso timestamp, hdop", "GET", "", "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0", "",
		traccarWant{status: 200, device: "902064", loc: &fleet.Location{Lat: 42.06288, Lng: -88.23412},
			time: time.Date(2016, 1, 27, 18, 55, 47, 0, time.UTC), speed: fp(0), alt: fp(224), attrs: map[string]string{"hdop": "6.0"}}},
	{"millisecond timestamp", "GET", "", "/?id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0", "",
		traccarWant{status: 200, device: "902064", loc: &fleet.Location{Lat: 42.06288, Lng: -88.23412},
			time: time.UnixMilli(1442068686579).UTC(), speed: fp(0), alt: fp(224), attrs: map[string]string{"hdop": "6.0"}}},
	{"date and time with a space", "GET", "", "/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0&id=353861053849681", "",
		traccarWant{status: 200, device: "353861053849681", loc: &fleet.Location{Lat: 49.60688, Lng: 6.15788},
			time: time.Date(2014, 6, 4, 9, 10, 11, 0, time.UTC), speed: fp(0), alt: fp(384.7)}},
	{"zeros", "GET", "", "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0", "",
		traccarWant{status: 200, device: "123456", loc: &fleet.Location{Lat: 60, Lng: 30}, time: time.Unix(1377177267, 0).UTC(),
			speed: fp(0), heading: fp(0), alt: fp(0), attrs: map[string]string{"hdop": "0.0"}}},
	{"minimal", "GET", "", "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0", "",
		traccarWant{status: 200, device: "123456", loc: &fleet.Location{Lat: 60, Lng: 30}, time: time.Unix(1377177267, 0).UTC()}},
	{"deviceid, heading, vacc, hacc", "GET", "", "/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456", "",
		traccarWant{status: 200, device: "123456", loc: &fleet.Location{Lat: 60, Lng: 30}, speed: fp(0), heading: fp(0), alt: fp(0),
			attrs: map[string]string{"vacc": "0", "hacc": "0"}}},
	{"battery", "GET", "", "/?id=861001000719969&lat=41.666667&lon=-0.883333&altitude=350.059479&speed=0.000000&batt=87", "",
		traccarWant{status: 200, device: "861001000719969", loc: &fleet.Location{Lat: 41.666667, Lng: -0.883333}, speed: fp(0),
			alt: fp(350.059479), battery: fp(87)}},
	{"location parameter", "GET", "", "/?id=123456&timestamp=1377177267&location=60.0,30.0", "",
		traccarWant{status: 200, device: "123456", loc: &fleet.Location{Lat: 60, Lng: 30}, time: time.Unix(1377177267, 0).UTC()}},
	{"ignition, rpm, fuel", "GET", "", "/?id=123456789012345&timestamp=1504763810&lat=40.7232948571&lon=-74.0061408571&bearing=7.19889788244&speed=40&ignition=true&rpm=933&fuel=24", "",
		traccarWant{status: 200, device: "123456789012345", loc: &fleet.Location{Lat: 40.7232948571, Lng: -74.0061408571},
			time: time.Unix(1504763810, 0).UTC(), speed: fp(40 * 1.852), heading: fp(7.19889788244), ignition: bp(true),
			attrs: map[string]string{"rpm": "933", "fuel": "24"}}},
}

// recorder is the registry, keeping the fixes it applied.
type recorder struct {
	*state.Registry
	mu    sync.Mutex
	fixes []*state.Fix
}

func (r *recorder) Apply(ctx context.Context, f *state.Fix) (*fleet.State, error) {
	s, err := r.Registry.Apply(ctx, f)
	if err == nil {
		r.mu.Lock()
		r.fixes = append(r.fixes, f)
		r.mu.Unlock()
	}
	return s, err
}

func (r *recorder) last() *state.Fix {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.fixes) == 0 {
		return nil
	}
	return r.fixes[len(r.fixes)-1]
}

// TestTraccarOsmAndSamples sends each sample of Traccar's OsmAnd decoder
// test to the handler over HTTP and checks the answer and the fix
// applied.
func TestTraccarOsmAndSamples(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := state.New(st, bus.NewMemory(), state.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "owner", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range traccarOsmAndSamples {
		if _, ok := reg.TrackerByDevice(s.want.device); s.want.device != "" && !ok {
			if _, err := reg.CreateTracker(ctx, &fleet.Tracker{Label: s.want.device, UserID: uid, DeviceID: s.want.device}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec := &recorder{Registry: reg}
	srv := httptest.NewServer(NewHandler(rec, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)

	for _, s := range traccarOsmAndSamples {
		t.Run(s.name, func(t *testing.T) {
			before := rec.last()
			req, err := http.NewRequest(s.method, srv.URL+s.target, strings.NewReader(s.body))
			if err != nil {
				t.Fatal(err)
			}
			if s.contentType != "" {
				req.Header.Set("Content-Type", s.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != s.want.status {
				t.Fatalf("answered %d, want %d", resp.StatusCode, s.want.status)
			}
			f := rec.last()
			if s.want.status != http.StatusOK {
				if f != before {
					t.Fatalf("a fix was applied: %+v", f)
				}
				return
			}
			checkTraccar(t, f, s.want)
		})
	}
}

func checkTraccar(t *testing.T, f *state.Fix, w traccarWant) {
	t.Helper()
	if f == nil {
		t.Fatal("no fix applied")
	}
	if f.DeviceID != w.device {
		t.Errorf("device %q, want %q", f.DeviceID, w.device)
	}
	switch {
	case w.loc == nil && f.Location != nil:
		t.Errorf("location %+v, want none", *f.Location)
	case w.loc != nil && (f.Location == nil || math.Abs(f.Location.Lat-w.loc.Lat) > 1e-9 || math.Abs(f.Location.Lng-w.loc.Lng) > 1e-9):
		t.Errorf("location %+v, want %+v", f.Location, *w.loc)
	}
	if want := w.time; !f.Time.Equal(want) {
		t.Errorf("time %v, want %v", f.Time, want)
	}
	eqf(t, "speed", f.Speed, w.speed)
	eqf(t, "heading", f.Heading, w.heading)
	eqf(t, "altitude", f.Alt, w.alt)
	eqf(t, "accuracy", f.Accuracy, w.accuracy)
	eqf(t, "battery", f.Battery, w.battery)
	if (f.Ignition == nil) != (w.ignition == nil) || (f.Ignition != nil && *f.Ignition != *w.ignition) {
		t.Errorf("ignition %v, want %v", f.Ignition, w.ignition)
	}
	for k, v := range w.attrs {
		if got, ok := f.Attributes[k]; !ok || got != v {
			t.Errorf("attribute %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	for _, k := range w.absent {
		if v, ok := f.Attributes[k]; ok {
			t.Errorf("attribute %s = %q, want none", k, v)
		}
	}
}

// TestTraccarOsmAndSamplesParse decodes the same samples without the
// handler: the query samples with Parse, the JSON ones with ParseJSON.
func TestTraccarOsmAndSamplesParse(t *testing.T) {
	for _, s := range traccarOsmAndSamples {
		t.Run(s.name, func(t *testing.T) {
			var f *state.Fix
			var err error
			if s.body != "" {
				f, err = ParseJSON([]byte(s.body), now)
			} else {
				_, query, _ := strings.Cut(s.target, "?")
				f, err = Parse(mustQuery(t, query), now)
			}
			if s.want.status != http.StatusOK {
				if !errors.Is(err, ErrMissingID) {
					t.Fatalf("err %v, want ErrMissingID", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkTraccar(t, f, s.want)
		})
	}
}
