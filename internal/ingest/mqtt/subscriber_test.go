package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetwire/fleetwire/internal/broker"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func suffix(t testing.TB) string {
	t.Helper()
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fixture is a real registry over SQLite and a memory bus.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	reg    *state.Registry
	user   int64
	states chan *bus.Message
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "u" + suffix(t), PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewMemory()
	f := &fixture{t: t, ctx: ctx, user: uid, states: make(chan *bus.Message, 64)}
	f.reg = state.New(st, b, state.Options{Logger: quietLog()})
	if err := f.reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	b.Subscribe(func(m *bus.Message) {
		if m.Kind == bus.KindState {
			select {
			case f.states <- m:
			default:
			}
		}
	})
	return f
}

func (f *fixture) tracker(device string) *fleet.Tracker {
	f.t.Helper()
	tr, err := f.reg.CreateTracker(f.ctx, &fleet.Tracker{UserID: f.user, Label: device, DeviceID: device})
	if err != nil {
		f.t.Fatal(err)
	}
	return tr
}

// waitState waits until cond holds for tracker id's state.
func (f *fixture) waitState(id int64, what string, cond func(*fleet.State) bool) *fleet.State {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if s, ok := f.reg.State(id); ok && cond(s) {
			return s
		}
		select {
		case <-f.states:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			s, _ := f.reg.State(id)
			f.t.Fatalf("timed out waiting for %s; state %+v", what, s)
		}
	}
}

// run starts a subscriber against url and waits until it is subscribed.
func (f *fixture) run(url string) *Subscriber {
	f.t.Helper()
	s := New(f.reg, Options{URL: url, Logger: quietLog()})
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			f.t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		f.t.Fatalf("Run returned early: %v", err)
	case <-time.After(15 * time.Second):
		f.t.Fatalf("not subscribed to %s", url)
	}
	return s
}

func publisher(t *testing.T, url string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("pub-" + suffix(t)).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect publisher to %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// brokers are the brokers the end-to-end tests run against.
func brokers(t *testing.T) map[string]string {
	out := map[string]string{}
	ext := os.Getenv("FLEETWIRE_TEST_MQTT_URL")
	if ext == "" {
		ext = "tcp://127.0.0.1:1883"
	}
	if ext != "off" {
		out["mosquitto"] = ext
	}
	b, err := broker.Start("127.0.0.1:0", broker.Options{Logger: quietLog()})
	if err != nil {
		t.Fatalf("embedded broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	// The subscriber and the test's publisher both sign in as fleetwire's
	// internal client; the device rules are the broker package's tests.
	out["embedded"] = b.InternalURL()
	return out
}

func metricValue(t *testing.T, result string) float64 {
	t.Helper()
	var sb strings.Builder
	if _, err := metrics.Default.WriteTo(&sb); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`fleetwire_ingest_total{protocol="mqtt",result=%q} `, result)
	for _, line := range strings.Split(sb.String(), "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			var n float64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("metric for %s missing", result)
	return 0
}

func TestEndToEnd(t *testing.T) {
	for name, url := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			run := suffix(t)
			dev, phone := "dev-"+run, "phone-"+run
			tr, tp := f.tracker(dev), f.tracker(phone)
			f.run(url)
			pub := publisher(t, url)

			publish(t, pub, "fleetwire/"+dev+"/position",
				`{"lat":52.52,"lon":13.405,"speed":42.4,"heading":91,"alt":34,"accuracy":6,"battery":81,"sat":9,"ignition":true,"time":"`+
					time.Now().UTC().Add(-2*time.Second).Format(time.RFC3339)+`"}`)
			s := f.waitState(tr.ID, "position", func(s *fleet.State) bool { return s.GPS.Location != nil })
			if s.GPS.Location.Lat != 52.52 || s.GPS.Location.Lng != 13.405 || s.GPS.Speed != 42 || s.GPS.Heading != 91 ||
				s.GPS.Alt != 34 || s.BatteryLevel == nil || *s.BatteryLevel != 81 || s.Ignition == nil || !*s.Ignition ||
				s.MovementStatus != fleet.Moving || s.ConnectionStatus != fleet.Active {
				t.Errorf("state after position: %+v", s)
			}

			publish(t, pub, "fleetwire/"+dev+"/readings", `{"fuel_level":41.5,"temperature":21.3,"door":"open","alarm":false}`)
			s = f.waitState(tr.ID, "readings", func(s *fleet.State) bool { return len(s.Additional) >= 4 })
			for k, want := range map[string]string{"fuel_level": "41.5", "temperature": "21.3", "door": "open", "alarm": "false"} {
				if s.Additional[k].Value != want {
					t.Errorf("additional[%s] = %q, want %q", k, s.Additional[k].Value, want)
				}
			}

			publish(t, pub, "fleetwire/"+dev+"/io", `{"inputs":[true,false],"outputs":[false,true,true]}`)
			s = f.waitState(tr.ID, "io", func(s *fleet.State) bool { return s.Outputs != nil })
			if fmt.Sprint(s.Inputs) != "[true false]" || fmt.Sprint(s.Outputs) != "[false true true]" {
				t.Errorf("io: inputs %v outputs %v", s.Inputs, s.Outputs)
			}

			tst := time.Now().Add(-5 * time.Second).Unix()
			publish(t, pub, "owntracks/alice-"+run+"/"+phone, `{"_type":"transition","lat":1,"lon":2,"tst":1}`)
			publish(t, pub, "owntracks/alice-"+run+"/"+phone,
				fmt.Sprintf(`{"_type":"location","lat":48.1372,"lon":11.5756,"tst":%d,"vel":12,"cog":270,"alt":520,"batt":55,"acc":15,"tid":"al"}`, tst))
			s = f.waitState(tp.ID, "owntracks", func(s *fleet.State) bool { return s.GPS.Location != nil })
			if s.GPS.Location.Lat != 48.1372 || s.GPS.Speed != 12 || s.GPS.Heading != 270 || s.GPS.Alt != 520 ||
				*s.BatteryLevel != 55 || *s.GPS.Precision != 15 || !s.GPS.Updated.Equal(time.Unix(tst, 0)) {
				t.Errorf("state after owntracks: %+v", s)
			}
		})
	}
}

func TestUnknownAndBadCounted(t *testing.T) {
	for name, url := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			run := suffix(t)
			known := f.tracker("known-" + run)
			blocked := f.tracker("blocked-" + run)
			if err := f.reg.SetBlocked(f.ctx, blocked.ID, true); err != nil {
				t.Fatal(err)
			}
			f.run(url)
			pub := publisher(t, url)

			unknown0, bad0, blocked0, acc0 := metricValue(t, "unknown_device"), metricValue(t, "bad_request"), metricValue(t, "blocked"), metricValue(t, "accepted")
			publish(t, pub, "fleetwire/nobody-"+run+"/position", `{"lat":1,"lon":2}`)
			publish(t, pub, "fleetwire/known-"+run+"/position", `{"lat":100,"lon":2}`)
			publish(t, pub, "fleetwire/known-"+run+"/position", `not json`)
			publish(t, pub, "fleetwire/blocked-"+run+"/position", `{"lat":1,"lon":2}`)
			// Last, so that once it is applied the others have been handled.
			publish(t, pub, "fleetwire/known-"+run+"/position", `{"lat":1,"lon":2}`)
			f.waitState(known.ID, "position", func(s *fleet.State) bool { return s.GPS.Location != nil })

			// Other tests may run in parallel against the shared broker,
			// so counts only grow by at least what this test sent. The
			// counter moves just after the state, so wait for it.
			want := map[string]float64{"unknown_device": unknown0 + 1, "bad_request": bad0 + 2, "blocked": blocked0 + 1, "accepted": acc0 + 1}
			deadline := time.Now().Add(5 * time.Second)
			for result, min := range want {
				for metricValue(t, result) < min {
					if time.Now().After(deadline) {
						t.Fatalf("%s = %v, want at least %v", result, metricValue(t, result), min)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			if s, _ := f.reg.State(blocked.ID); s.GPS.Location != nil {
				t.Errorf("blocked tracker got a position: %+v", s)
			}
		})
	}
}

func TestRunBadURL(t *testing.T) {
	f := newFixture(t)
	for _, u := range []string{"http://x:1", "tcp://", "::"} {
		if err := New(f.reg, Options{URL: u}).Run(f.ctx); err == nil {
			t.Errorf("Run(%q) succeeded", u)
		}
	}
}

func TestRunStopsWhileConnecting(t *testing.T) {
	f := newFixture(t)
	// Nothing listens on port 1 of localhost.
	s := New(f.reg, Options{URL: "tcp://127.0.0.1:1", Logger: quietLog()})
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := s.Run(f.ctx); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestNGPOverMQTT(t *testing.T) {
	for name, url := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			dev := "ngp" + suffix(t)
			tr := f.tracker(dev)
			f.run(url)
			pub := publisher(t, url)
			disc0 := metricValue(t, "discarded")
			bad0 := metricValue(t, "bad_request")

			at := time.Now().UTC().Add(-10 * time.Second).Truncate(time.Second)
			msg := func(at time.Time, lat float64) string {
				return fmt.Sprintf(`{"message_time":%q,"device_id":%q,"version":"1.2","location":{"latitude":%v,"longitude":-118.46,"satellites":7,"speed":43,"heading":77},"battery_level":68,"event_id":605,"temperature_2":-13.7,"custom_fuel":86}`,
					at.Format(time.RFC3339), dev, lat)
			}
			// Another device's message on this device's topic is dropped.
			publish(t, pub, "ngp/"+dev, strings.Replace(msg(at, 1), dev, "someone-else", 1))
			publish(t, pub, "ngp/"+dev, msg(at, 34.15))
			s := f.waitState(tr.ID, "ngp fix", func(s *fleet.State) bool { return s.GPS.Location != nil })
			if s.GPS.Location.Lat != 34.15 || s.GPS.Speed != 43 || s.GPS.Heading != 77 || *s.BatteryLevel != 68 ||
				s.Ignition == nil || !*s.Ignition || s.Additional["temperature_2"].Value != "-13.7" ||
				s.Additional["custom_fuel"].Value != "86" || s.Additional["event"].Value != "Ignition on" {
				t.Errorf("state after ngp message: %+v", s)
			}
			// An older message is discarded; a newer one applies.
			publish(t, pub, "ngp/"+dev, msg(at.Add(-5*time.Second), 10))
			publish(t, pub, "ngp/"+dev, msg(at.Add(time.Second), 20))
			s = f.waitState(tr.ID, "newer ngp fix", func(s *fleet.State) bool { return s.GPS.Location.Lat != 34.15 })
			if s.GPS.Location.Lat != 20 {
				t.Errorf("latitude %v after out-of-order and newer message, want 20", s.GPS.Location.Lat)
			}
			deadline := time.Now().Add(5 * time.Second)
			for metricValue(t, "discarded") < disc0+1 || metricValue(t, "bad_request") < bad0+1 {
				if time.Now().After(deadline) {
					t.Fatalf("discarded %v (from %v), bad_request %v (from %v)", metricValue(t, "discarded"), disc0, metricValue(t, "bad_request"), bad0)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestResubscribeAfterBrokerRestart(t *testing.T) {
	opts := broker.Options{InternalPassword: "restart-test-password", Logger: quietLog()}
	b, err := broker.Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	addr, url := b.Addr(), b.InternalURL()
	f := newFixture(t)
	dev := "re" + suffix(t)
	tr := f.tracker(dev)
	f.run(url)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// A fresh broker knows nothing of the old subscriptions.
	var b2 *broker.Broker
	for i := 0; ; i++ {
		if b2, err = broker.Start(addr, opts); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("restart broker on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { _ = b2.Close() })
	pub := publisher(t, url)
	// Publish until the subscriber is back: QoS 1 is not retained for a
	// subscriber that has not subscribed yet.
	deadline := time.Now().Add(30 * time.Second)
	for {
		publish(t, pub, "fleetwire/"+dev+"/position", `{"lat":3,"lon":4}`)
		if s, _ := f.reg.State(tr.ID); s.GPS.Location != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no fix applied after the broker restarted")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
