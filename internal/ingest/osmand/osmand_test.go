package osmand

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// The counters are process-wide, so tests that read them do not run in
// parallel.

type env struct {
	reg  *state.Registry
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []*bus.Message
}

func (e *env) states() []*fleet.State {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*fleet.State
	for _, m := range e.msgs {
		if m.Kind == bus.KindState {
			out = append(out, m.State)
		}
	}
	return out
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := bus.NewMemory()
	reg := state.New(st, b, state.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "owner", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"dev-1", "dev-2", "dev-blocked"} {
		tr, err := reg.CreateTracker(ctx, &fleet.Tracker{Label: dev, UserID: uid, DeviceID: dev, Model: "osmand"})
		if err != nil {
			t.Fatal(err)
		}
		if dev == "dev-blocked" {
			if err := reg.SetBlocked(ctx, tr.ID, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	e := &env{reg: reg}
	cancel := b.Subscribe(func(m *bus.Message) {
		e.mu.Lock()
		e.msgs = append(e.msgs, m)
		e.mu.Unlock()
	})
	t.Cleanup(cancel)
	e.srv = httptest.NewServer(NewHandler(reg, slog.New(slog.DiscardHandler)))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) do(t *testing.T, method, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) state(t *testing.T, dev string) *fleet.State {
	t.Helper()
	tr, ok := e.reg.TrackerByDevice(dev)
	if !ok {
		t.Fatalf("no tracker for %s", dev)
	}
	s, _ := e.reg.State(tr.ID)
	return s
}

type counts struct{ accepted, bad, unknown, blocked, failed uint64 }

func snapshot() counts {
	return counts{mAccepted.Value(), mBadRequest.Value(), mUnknownDevice.Value(), mBlocked.Value(), mError.Value()}
}

func (c counts) minus(o counts) counts {
	return counts{c.accepted - o.accepted, c.bad - o.bad, c.unknown - o.unknown, c.blocked - o.blocked, c.failed - o.failed}
}

func TestHandlerGET(t *testing.T) {
	e := newEnv(t)
	before := snapshot()
	ts := time.Now().Add(-10 * time.Second).Unix()
	code, body := e.do(t, "GET", "/?id=dev-1&lat=52.52&lon=13.405&speed=20&bearing=90&altitude=35&accuracy=4&batt=81&sat=12&ignition=true&timestamp="+itoa(ts)+"&trip=morning", "", "")
	if code != 200 || body != "" {
		t.Fatalf("GET: %d %q", code, body)
	}
	s := e.state(t, "dev-1")
	if s.GPS.Location == nil || s.GPS.Location.Lat != 52.52 || s.GPS.Location.Lng != 13.405 {
		t.Fatalf("location %+v", s.GPS.Location)
	}
	if s.GPS.Speed != 37 { // 20 knots = 37.04 km/h
		t.Errorf("speed %d km/h, want 37", s.GPS.Speed)
	}
	if s.GPS.Heading != 90 || s.GPS.Alt != 35 || s.BatteryLevel == nil || *s.BatteryLevel != 81 {
		t.Errorf("state %+v", s)
	}
	if s.LastUpdate.Unix() != ts {
		t.Errorf("last update %v, want unix %d", s.LastUpdate, ts)
	}
	if s.MovementStatus != fleet.Moving || s.ConnectionStatus != fleet.Active {
		t.Errorf("statuses %s/%s", s.MovementStatus, s.ConnectionStatus)
	}
	if a := s.Additional["trip"]; a.Value != "morning" {
		t.Errorf("additional %v", s.Additional)
	}
	if got := len(e.states()); got != 1 {
		t.Errorf("%d states published, want 1", got)
	}
	if d := snapshot().minus(before); d != (counts{accepted: 1}) {
		t.Errorf("metrics moved by %+v", d)
	}
}

func TestHandlerAnyPath(t *testing.T) {
	e := newEnv(t)
	if code, body := e.do(t, "GET", "/some/path?deviceid=dev-2&lat=1&lon=2", "", ""); code != 200 {
		t.Fatalf("%d %q", code, body)
	}
}

func TestHandlerPOSTForm(t *testing.T) {
	e := newEnv(t)
	form := url.Values{"id": {"dev-2"}, "lat": {"48.85"}, "lon": {"2.35"}, "speed": {"0"}, "ignition": {"false"}}
	code, body := e.do(t, "POST", "/", "application/x-www-form-urlencoded", form.Encode())
	if code != 200 {
		t.Fatalf("POST form: %d %q", code, body)
	}
	s := e.state(t, "dev-2")
	if s.GPS.Location == nil || s.GPS.Location.Lat != 48.85 || s.MovementStatus != fleet.Parked {
		t.Fatalf("state %+v", s)
	}
	// Without a content type, and with the id in the query string.
	code, body = e.do(t, "POST", "/?id=dev-2", "", "lat=48.86&lon=2.36")
	if code != 200 {
		t.Fatalf("POST bare body: %d %q", code, body)
	}
	if s := e.state(t, "dev-2"); s.GPS.Location.Lat != 48.86 {
		t.Errorf("lat %v", s.GPS.Location.Lat)
	}
	// An empty POST uses the query string.
	if code, body := e.do(t, "POST", "/?id=dev-2&lat=48.87&lon=2.37", "", ""); code != 200 {
		t.Fatalf("POST empty body: %d %q", code, body)
	}
}

func TestHandlerPOSTJSON(t *testing.T) {
	e := newEnv(t)
	before := snapshot()
	ts := time.Now().Add(-5 * time.Second).UTC().Format("2006-01-02T15:04:05.000Z")
	js := `{"location": {"timestamp": "` + ts + `", "coords": {"latitude": 40.4, "longitude": -3.7, "speed": 12.5, "heading": 180, "altitude": 650, "accuracy": 3},
		"is_moving": true, "battery": {"level": 0.42, "is_charging": true}, "activity": {"type": "in_vehicle"}}, "device_id": "dev-1"}`
	code, body := e.do(t, "POST", "/", "application/json", js)
	if code != 200 {
		t.Fatalf("POST JSON: %d %q", code, body)
	}
	s := e.state(t, "dev-1")
	if s.GPS.Location == nil || s.GPS.Location.Lat != 40.4 || s.GPS.Location.Lng != -3.7 {
		t.Fatalf("location %+v", s.GPS.Location)
	}
	if s.GPS.Speed != 45 || s.GPS.Heading != 180 || *s.BatteryLevel != 42 { // 12.5 m/s = 45 km/h
		t.Errorf("speed %d heading %d battery %d", s.GPS.Speed, s.GPS.Heading, *s.BatteryLevel)
	}
	if s.Additional["charge"].Value != "true" || s.Additional["activity"].Value != "in_vehicle" {
		t.Errorf("additional %v", s.Additional)
	}
	// Detected by its first byte without a content type.
	if code, body := e.do(t, "POST", "/", "", ` {"device_id": "dev-1"}`); code != 200 {
		t.Fatalf("POST JSON without content type: %d %q", code, body)
	}
	if d := snapshot().minus(before); d != (counts{accepted: 2}) {
		t.Errorf("metrics moved by %+v", d)
	}
}

func TestHandlerErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		want                            counts
	}{
		{"missing id", "GET", "/?lat=1&lon=2", "", "", 400, counts{bad: 1}},
		{"lat out of range", "GET", "/?id=dev-1&lat=100&lon=2", "", "", 400, counts{bad: 1}},
		{"lon not a number", "GET", "/?id=dev-1&lat=1&lon=east", "", "", 400, counts{bad: 1}},
		{"bad json", "POST", "/", "application/json", `{"device_id":`, 400, counts{bad: 1}},
		{"json lat out of range", "POST", "/", "application/json", `{"device_id": "dev-1", "location": {"coords": {"latitude": -95, "longitude": 0}}}`, 400, counts{bad: 1}},
		{"unknown device", "GET", "/?id=nobody&lat=1&lon=2", "", "", 404, counts{unknown: 1}},
		{"unknown device json", "POST", "/", "application/json", `{"device_id": "nobody"}`, 404, counts{unknown: 1}},
		{"blocked", "GET", "/?id=dev-blocked&lat=1&lon=2", "", "", 403, counts{blocked: 1}},
		{"oversize", "POST", "/", "application/x-www-form-urlencoded", "id=dev-1&pad=" + strings.Repeat("x", MaxBody), 413, counts{bad: 1}},
		{"method", "PUT", "/?id=dev-1", "", "", 405, counts{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot()
			code, body := e.do(t, tc.method, tc.path, tc.ctype, tc.body)
			if code != tc.code {
				t.Errorf("%d %q, want %d", code, body, tc.code)
			}
			if body == "" || strings.ContainsAny(strings.TrimSpace(body), "<{") {
				t.Errorf("body %q, want a plain-text message", body)
			}
			if d := snapshot().minus(before); d != tc.want {
				t.Errorf("metrics moved by %+v, want %+v", d, tc.want)
			}
		})
	}
	if n := len(e.states()); n != 0 {
		t.Errorf("%d states published by rejected requests", n)
	}
}

// TestHandlerOversizeChunked: a body over the limit without a
// Content-Length is cut off while reading.
func TestHandlerOversizeChunked(t *testing.T) {
	e := newEnv(t)
	pr, pw := io.Pipe()
	go func() {
		chunk := []byte(strings.Repeat("a", 4096))
		for i := 0; i < (MaxBody/len(chunk))+2; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.srv.URL+"/?id=dev-1", pr)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pr.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %s", resp.Status)
	}
}

func TestHandlerExposesMetrics(t *testing.T) {
	var b strings.Builder
	if _, err := metrics.Default.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"accepted", "bad_request", "unknown_device", "blocked", "error"} {
		if want := `fleetwire_ingest_total{protocol="osmand",result="` + r + `"}`; !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

type failing struct{}

func (failing) Apply(context.Context, *state.Fix) (*fleet.State, error) {
	return nil, errors.New("disk on fire")
}

func TestHandlerApplyError(t *testing.T) {
	srv := httptest.NewServer(NewHandler(failing{}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	before := snapshot()
	resp, err := http.Get(srv.URL + "/?id=x&lat=1&lon=2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || strings.Contains(string(b), "fire") {
		t.Errorf("%s %q", resp.Status, b)
	}
	if d := snapshot().minus(before); d != (counts{failed: 1}) {
		t.Errorf("metrics moved by %+v", d)
	}
}

// TestHandlerConcurrent posts from many goroutines at once; run with -race.
func TestHandlerConcurrent(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				lat := 52 + float64(g)/10 + float64(i)/1000
				resp, err := e.srv.Client().Get(e.srv.URL + "/?id=dev-1&lat=" + ftoa(lat) + "&lon=13&speed=10")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("status %s", resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(e.states()); n != 160 {
		t.Errorf("%d states published, want 160", n)
	}
	if s := e.state(t, "dev-1"); s.GPS.Location == nil || math.Abs(s.GPS.Location.Lng-13) > 1e-9 {
		t.Errorf("state %+v", s)
	}
}

func itoa(n int64) string   { return strconv.FormatInt(n, 10) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
