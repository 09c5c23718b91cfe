package ngp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type fixture struct {
	t   *testing.T
	ctx context.Context
	reg *state.Registry
	srv *httptest.Server
	uid int64
}

func newFixture(t *testing.T, h2c bool) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "ngp", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	reg := state.New(st, bus.NewMemory(), state.Options{Logger: quietLog()})
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(NewHandler(reg, quietLog()))
	if h2c {
		srv.Config.Protocols = Protocols()
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{t: t, ctx: ctx, reg: reg, srv: srv, uid: uid}
}

func (f *fixture) tracker(device string) *fleet.Tracker {
	f.t.Helper()
	tr, err := f.reg.CreateTracker(f.ctx, &fleet.Tracker{UserID: f.uid, Label: device, DeviceID: device})
	if err != nil {
		f.t.Fatal(err)
	}
	return tr
}

func (f *fixture) post(body string) (int, string) {
	f.t.Helper()
	return f.do(http.DefaultClient, http.MethodPost, body)
}

func (f *fixture) do(c *http.Client, method, body string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func metricValue(t *testing.T, result string) float64 {
	t.Helper()
	var sb strings.Builder
	if _, err := metrics.Default.WriteTo(&sb); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`fleetwire_ingest_total{protocol="ngp",result=%q} `, result)
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

func unique() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func msg(device string, at time.Time, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"device_id":%q,"message_time":%q%s}`, device, at.UTC().Format(time.RFC3339), extra)
}

func TestHandlerAppliesMessages(t *testing.T) {
	f := newFixture(t, false)
	dev := "8573" + unique()
	tr := f.tracker(dev)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	acc0 := metricValue(t, "accepted")

	code, body := f.post(msg(dev, at, `"location":{"latitude":56.348579,"longitude":60.12344,"altitude":271,"satellites":8,
		"hdop":0.41,"speed":43,"heading":77},"event_id":605,"battery_level":93,"input_status":5,"output_status":2,
		"temperature_2":-13.7,"custom_fuel":86,"vin":"WVWZZZ1JZXW000001"`))
	if code != http.StatusOK || body != "" {
		t.Fatalf("POST: %d %q", code, body)
	}
	s, _ := f.reg.State(tr.ID)
	if s.GPS.Location == nil || s.GPS.Location.Lat != 56.348579 || s.GPS.Speed != 43 || s.GPS.Heading != 77 ||
		s.GPS.Alt != 271 || *s.BatteryLevel != 93 || s.Ignition == nil || !*s.Ignition ||
		fmt.Sprint(s.Inputs) != "[true false true false false false false false]" || !s.Outputs[1] ||
		s.Additional["custom_fuel"].Value != "86" || s.Additional["hdop"].Value != "0.41" ||
		s.Additional["vin"].Value != "WVWZZZ1JZXW000001" || !s.LastUpdate.Equal(at) ||
		s.MovementStatus != fleet.Moving || s.ConnectionStatus != fleet.Active {
		t.Errorf("state %+v", s)
	}
	if d := metricValue(t, "accepted") - acc0; d < 1 {
		t.Errorf("accepted grew by %v", d)
	}

	// Ignition off, a later message without location keeps the position.
	code, _ = f.post(msg(dev, at.Add(time.Second), `"event_id":604,"board_voltage":13.9`))
	s, _ = f.reg.State(tr.ID)
	if code != http.StatusOK || *s.Ignition || s.GPS.Location == nil || s.Additional["board_voltage"].Value != "13.9" {
		t.Errorf("second message: %d, state %+v", code, s)
	}
}

func TestHandlerOutOfOrder(t *testing.T) {
	f := newFixture(t, false)
	dev := "ooo" + unique()
	tr := f.tracker(dev)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	loc := func(lat float64) string {
		return fmt.Sprintf(`"location":{"latitude":%v,"longitude":1,"satellites":5}`, lat)
	}
	if code, _ := f.post(msg(dev, at, loc(10))); code != http.StatusOK {
		t.Fatal(code)
	}
	d0 := metricValue(t, "discarded")
	// Older than the last message: answered 200, not stored.
	if code, body := f.post(msg(dev, at.Add(-time.Second), loc(20))); code != http.StatusOK || body != "" {
		t.Fatalf("older message: %d %q", code, body)
	}
	if s, _ := f.reg.State(tr.ID); s.GPS.Location.Lat != 10 {
		t.Errorf("older message applied: %+v", s.GPS.Location)
	}
	if metricValue(t, "discarded") < d0+1 {
		t.Error("discarded not counted")
	}
	// Same time is not earlier.
	if code, _ := f.post(msg(dev, at, loc(30))); code != http.StatusOK {
		t.Fatal(code)
	}
	if s, _ := f.reg.State(tr.ID); s.GPS.Location.Lat != 30 {
		t.Errorf("same-time message not applied: %+v", s.GPS.Location)
	}
}

func TestHandlerErrors(t *testing.T) {
	f := newFixture(t, false)
	known := "k" + unique()
	f.tracker(known)
	blocked := f.tracker("b" + unique())
	if err := f.reg.SetBlocked(f.ctx, blocked.ID, true); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	before := map[string]float64{}
	for _, r := range []string{"bad_request", "unknown_device", "blocked"} {
		before[r] = metricValue(t, r)
	}
	for _, c := range []struct {
		name, body string
		code       int
		inBody     string
	}{
		{"malformed", `{"device_id":`, 400, "malformed JSON"},
		{"array", `[]`, 400, "JSON object"},
		{"missing time", `{"device_id":"` + known + `"}`, 400, "message_time is required"},
		{"range", msg(known, now, `"location":{"latitude":95,"longitude":0}`), 400, "location.latitude"},
		{"unknown", msg("nobody-"+unique(), now, ""), 403, "unknown device_id"},
		{"blocked", msg(blocked.DeviceID, now, ""), 403, "blocked"},
	} {
		code, body := f.post(c.body)
		if code != c.code || !strings.Contains(body, c.inBody) {
			t.Errorf("%s: %d %q, want %d containing %q", c.name, code, body, c.code, c.inBody)
		}
	}
	if code, _ := f.do(http.DefaultClient, http.MethodGet, ""); code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", code)
	}
	big := msg(known, now, `"custom_blob":"`+strings.Repeat("A", MaxMessage)+`"`)
	if code, _ := f.post(big); code != http.StatusBadRequest {
		t.Errorf("oversized body: %d", code)
	}
	for r, min := range map[string]float64{"bad_request": 6, "unknown_device": 1, "blocked": 1} {
		if d := metricValue(t, r) - before[r]; d < min {
			t.Errorf("%s grew by %v, want %v", r, d, min)
		}
	}
}

type failing struct{}

func (failing) Apply(context.Context, *state.Fix) (*fleet.State, error) {
	return nil, errors.New("disk full")
}

func TestHandlerServerError(t *testing.T) {
	srv := httptest.NewServer(NewHandler(failing{}, quietLog()))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(msg("x", time.Now(), "")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
}

func TestHandlerHTTP2Cleartext(t *testing.T) {
	f := newFixture(t, true)
	dev := "h2" + unique()
	tr := f.tracker(dev)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(msg(dev, time.Now().Add(-time.Second), `"battery_level":40`)))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("status %d over %s", resp.StatusCode, resp.Proto)
	}
	if s, _ := f.reg.State(tr.ID); s.BatteryLevel == nil || *s.BatteryLevel != 40 {
		t.Errorf("state %+v", s)
	}
	// HTTP/1.1 still works on the same server.
	if code, _ := f.post(msg(dev, time.Now(), "")); code != http.StatusOK {
		t.Errorf("HTTP/1.1: %d", code)
	}
}

func TestDeviceFromTopic(t *testing.T) {
	for topic, want := range map[string]string{"ngp/1112312212": "1112312212", "ngp/": "", "ngp/a/b": "", "ngpx/1": "", "ngp/+": ""} {
		got, ok := DeviceFromTopic(topic)
		if got != want || ok != (want != "") {
			t.Errorf("DeviceFromTopic(%q) = %q, %v", topic, got, ok)
		}
	}
}
