package mqtt

import (
	"math"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
)

func ptr[T any](v T) *T { return &v }

// traccarOwnTracksSamples are the inputs of Traccar's
// OwnTracksProtocolDecoderTest (traccar/traccar,
// src/test/java/org/traccar/protocol/OwnTracksProtocolDecoderTest.java),
// in its order; every one is a position there (verifyPosition). Traccar
// takes them over HTTP; here they arrive on owntracks/<user>/<device>.
var traccarOwnTracksSamples = []struct {
	name, payload string
	lat, lon      float64
	tst           int64
	speed         *float64 // km/h
	heading       *float64
	alt           *float64
	accuracy      *float64
	battery       *float64
	ignition      *bool
	event         string // attribute "event", "" for none
}{
	{"manual with battery", `{"_type":"location","acc":15,"alt":440,"batt":46,"conn":"w","lat":46.0681247,"lon":11.1512805,"t":"u","tid":"5t","tst":1551874878,"vac":2,"vel":0}`,
		46.0681247, 11.1512805, 1551874878, ptr(0.0), nil, ptr(440.0), ptr(15.0), ptr(46.0), nil, "u"},
	{"minimal", `{"lon":2.29513,"lat":48.85833,"tst":1497349316,"_type":"location","tid":"JJ"}`,
		48.85833, 2.29513, 1497349316, nil, nil, nil, nil, nil, nil, ""},
	{"moving", `{"cog":271,"lon":2.29513,"acc":5,"vel":61,"vac":21,"lat":48.85833,"tst":1497349316,"alt":167,"_type":"location","tid":"JJ","t":"u","batt":67}`,
		48.85833, 2.29513, 1497349316, ptr(61.0), ptr(271.0), ptr(167.0), ptr(5.0), ptr(67.0), nil, "u"},
	{"short coordinates", `{"lat":48.85,"lon":2.295,"_type":"location","tid":"JJ","tst":1497476456}`,
		48.85, 2.295, 1497476456, nil, nil, nil, nil, nil, nil, ""},
	{"integer coordinates, topic inside", `{"lon":-122,"acc":5,"created_at":1736161415,"lat":37,"topic":"owntracks/ckrey/22A67880-15C3-41A6-9157-25545C7993AC","t":"u","m":1,"tst":1736161169,"conn":"w","alt":0,"_type":"location","tid":"AC"}`,
		37, -122, 1736161169, nil, nil, ptr(0.0), ptr(5.0), nil, nil, "u"},
	{"ignition off", `{"topic":"owntracks/qtripp/865284041968706","lat":47.420051,"lon":13.654704,"vel":0,"cog":113,"tst":1736519167,"mcc":232,"mnc":1,"lac":"4F4D","cid":"673A","_type":"location","acc":10,"alt":1113,"t":"I","don":105,"tid":"CS"}`,
		47.420051, 13.654704, 1736519167, ptr(0.0), ptr(113.0), ptr(1113.0), ptr(10.0), nil, ptr(false), "I"},
}

func eqPtr(t *testing.T, name string, got, want *float64) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil || math.Abs(*got-*want) > 1e-9:
		t.Errorf("%s = %s, want %s", name, fmtPtr(got), fmtPtr(want))
	}
}

func TestTraccarOwnTracksSamples(t *testing.T) {
	for _, s := range traccarOwnTracksSamples {
		t.Run(s.name, func(t *testing.T) {
			f, err := ParseOwnTracks("phone", []byte(s.payload), now)
			if err != nil {
				t.Fatal(err)
			}
			checkOwnTracks(t, f, s.lat, s.lon, s.tst)
			eqPtr(t, "speed", f.Speed, s.speed)
			eqPtr(t, "heading", f.Heading, s.heading)
			eqPtr(t, "alt", f.Alt, s.alt)
			eqPtr(t, "accuracy", f.Accuracy, s.accuracy)
			eqPtr(t, "battery", f.Battery, s.battery)
			if (f.Ignition == nil) != (s.ignition == nil) || (f.Ignition != nil && *f.Ignition != *s.ignition) {
				t.Errorf("ignition %s, want %s", fmtPtr(f.Ignition), fmtPtr(s.ignition))
			}
			if got := f.Attributes["event"]; got != s.event || (s.event == "" && f.Attributes != nil) {
				t.Errorf("attributes %v, want event %q", f.Attributes, s.event)
			}
		})
	}
}

func checkOwnTracks(t *testing.T, f *state.Fix, lat, lon float64, tst int64) {
	t.Helper()
	if f.DeviceID != "phone" || f.Location == nil || f.Location.Lat != lat || f.Location.Lng != lon {
		t.Errorf("fix %+v at %+v, want phone at %v,%v", f, f.Location, lat, lon)
	}
	if !f.Time.Equal(time.Unix(tst, 0)) {
		t.Errorf("time %v, want %v", f.Time, time.Unix(tst, 0).UTC())
	}
}

// TestOwnTracksIgnition: "i" switches the ignition on, "I" off; an
// explicit ign wins over t.
func TestOwnTracksIgnition(t *testing.T) {
	for payload, want := range map[string]*bool{
		`{"_type":"location","lat":1,"lon":2,"tst":1736519167,"t":"i"}`:             ptr(true),
		`{"_type":"location","lat":1,"lon":2,"tst":1736519167,"t":"I"}`:             ptr(false),
		`{"_type":"location","lat":1,"lon":2,"tst":1736519167,"t":"I","ign":true}`:  ptr(true),
		`{"_type":"location","lat":1,"lon":2,"tst":1736519167,"ign":false,"t":"i"}`: ptr(false),
		`{"_type":"location","lat":1,"lon":2,"tst":1736519167,"t":"p"}`:             nil,
		`{"_type":"location","lat":1,"lon":2,"tst":1736519167,"t":null,"ign":null}`: nil,
	} {
		f, err := ParseOwnTracks("d", []byte(payload), now)
		if err != nil {
			t.Fatalf("%s: %v", payload, err)
		}
		if (f.Ignition == nil) != (want == nil) || (f.Ignition != nil && *f.Ignition != *want) {
			t.Errorf("%s: ignition %s, want %s", payload, fmtPtr(f.Ignition), fmtPtr(want))
		}
	}
	for _, payload := range []string{
		`{"_type":"location","lat":1,"lon":2,"tst":1,"t":5}`,
		`{"_type":"location","lat":1,"lon":2,"tst":1,"t":""}`,
		`{"_type":"location","lat":1,"lon":2,"tst":1,"ign":"yes"}`,
	} {
		if _, err := ParseOwnTracks("d", []byte(payload), now); err == nil {
			t.Errorf("%s accepted", payload)
		}
	}
}

// TestTraccarOwnTracksOverMQTT publishes every sample to a real broker
// and checks the tracker's state follows.
func TestTraccarOwnTracksOverMQTT(t *testing.T) {
	for name, url := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			run := suffix(t)
			phone := "phone-" + run
			tr := f.tracker(phone)
			f.run(url)
			pub := publisher(t, url)
			for _, s := range traccarOwnTracksSamples {
				publish(t, pub, "owntracks/traccar-"+run+"/"+phone, s.payload)
				st := f.waitState(tr.ID, s.name, func(st *fleet.State) bool {
					return st.GPS.Location != nil && st.GPS.Location.Lat == s.lat && st.GPS.Location.Lng == s.lon &&
						st.LastUpdate.Equal(time.Unix(s.tst, 0))
				})
				if s.ignition != nil && (st.Ignition == nil || *st.Ignition != *s.ignition) {
					t.Errorf("%s: ignition %s, want %v", s.name, fmtPtr(st.Ignition), *s.ignition)
				}
				if s.event != "" && st.Additional["event"].Value != s.event {
					t.Errorf("%s: event %+v", s.name, st.Additional["event"])
				}
			}
		})
	}
}
