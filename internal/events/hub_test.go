package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/auth"
	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// fixture is a hub over a real store, auth service and registry.
type fixture struct {
	t    testing.TB
	ctx  context.Context
	auth *auth.Service
	reg  *state.Registry
	hub  *Hub
	now  atomic.Pointer[time.Time]
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := bus.NewMemory()
	f := &fixture{t: t, ctx: ctx}
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	f.now.Store(&start)
	clock := func() time.Time { return *f.now.Load() }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.auth = auth.New(st, b, auth.Options{BcryptCost: 4, Logger: log})
	f.reg = state.New(st, b, state.Options{Now: clock, Logger: log})
	if err := f.reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if opts.Now == nil {
		opts.Now = clock
	}
	opts.Logger = log
	f.hub = NewHub(f.auth, f.reg, opts)
	b.Subscribe(f.hub.HandleBus)
	return f
}

func (f *fixture) advance(d time.Duration) {
	n := f.now.Load().Add(d)
	f.now.Store(&n)
}

func (f *fixture) user(login, tz string) (*fleet.User, string) {
	f.t.Helper()
	u, err := f.auth.CreateUser(f.ctx, login, "password-"+login, login, tz)
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := f.auth.Login(f.ctx, login, "password-"+login)
	if err != nil {
		f.t.Fatal(err)
	}
	return u, s.Hash
}

func (f *fixture) tracker(uid int64, device string) *fleet.Tracker {
	f.t.Helper()
	t, err := f.reg.CreateTracker(f.ctx, &fleet.Tracker{UserID: uid, Label: device, DeviceID: device})
	if err != nil {
		f.t.Fatal(err)
	}
	return t
}

func (f *fixture) fix(device string, lat float64) {
	f.t.Helper()
	speed := 30.0
	if _, err := f.reg.Apply(f.ctx, &state.Fix{DeviceID: device, Location: &fleet.Location{Lat: lat, Lng: 13.4}, Speed: &speed}); err != nil {
		f.t.Fatal(err)
	}
}

// drain returns every queued message of c, decoded.
func drain(t *testing.T, c *Client) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range c.Outbox().Drain(nil, 0) {
		raw := e.Data
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("message is not JSON: %q: %v", raw, err)
		}
		out = append(out, m)
	}
	return out
}

func send(c *Client, v any) {
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	c.Receive(b)
}

func sub(hash string, reqs ...map[string]any) map[string]any {
	return map[string]any{"action": "subscribe", "hash": hash, "requests": reqs}
}

func TestSubscribeResponseAndInitialStates(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("ann", "Europe/Berlin")
	other, _ := f.user("ben", "UTC")
	t1 := f.tracker(u.ID, "a1")
	t2 := f.tracker(u.ID, "a2")
	foreign := f.tracker(other.ID, "b1")
	f.fix("a1", 52.1)
	if err := f.reg.SetBlocked(f.ctx, t2.ID, true); err != nil {
		t.Fatal(err)
	}

	c := f.hub.NewClient()
	send(c, sub(hash,
		map[string]any{"type": "state", "trackers": []int64{t1.ID, t2.ID, foreign.ID}},
		map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "format": "compact"}))
	msgs := drain(t, c)
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want response, one state, one batch: %v", len(msgs), msgs)
	}
	resp := msgs[0]
	if resp["type"] != "response" || resp["action"] != "subscription/subscribe" {
		t.Fatalf("response %v", resp)
	}
	if evs := fmt.Sprint(resp["events"]); evs != "[state state_batch]" {
		t.Errorf("events %s", evs)
	}
	data := resp["data"].(map[string]any)
	want := fmt.Sprintf("map[success:true value:map[%d:normal %d:blocked %d:unknown]]", t1.ID, t2.ID, foreign.ID)
	if got := fmt.Sprint(data["state"]); got != want {
		t.Errorf("state result %s, want %s", got, want)
	}
	want = fmt.Sprintf("map[success:true value:map[%d:normal %d:blocked]]", t1.ID, t2.ID)
	if got := fmt.Sprint(data["state_batch"]); got != want {
		t.Errorf("state_batch result %s, want %s", got, want)
	}
	st := msgs[1]
	if st["event"] != "state" || st["user_time"] != "2026-11-23 11:00:00" {
		t.Errorf("initial state %v (user_time must be in Europe/Berlin)", st)
	}
	if d := st["data"].(map[string]any); int64(d["source_id"].(float64)) != t1.SourceID {
		t.Errorf("initial state for source %v, want %d", d["source_id"], t1.SourceID)
	}
	batch := msgs[2]
	entries := batch["data"].([]any)
	if batch["event"] != "state_batch" || len(entries) != 1 {
		t.Fatalf("initial batch %v: want only the non-blocked tracker", batch)
	}
	compact := entries[0].(map[string]any)
	for _, k := range []string{"gsm", "battery_level", "inputs", "outputs", "additional"} {
		if _, ok := compact[k]; ok {
			t.Errorf("compact state has %s", k)
		}
	}
	for _, k := range []string{"source_id", "gps", "connection_status", "movement_status", "movement_status_update", "last_update"} {
		if _, ok := compact[k]; !ok {
			t.Errorf("compact state lacks %s", k)
		}
	}
}

func TestDeprecatedForm(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("cat", "UTC")
	t1 := f.tracker(u.ID, "c1")
	c := f.hub.NewClient()
	send(c, map[string]any{"action": "subscribe", "hash": hash, "trackers": []int64{t1.ID}, "events": []string{"state"}})
	msgs := drain(t, c)
	if len(msgs) != 2 || msgs[0]["type"] != "response" || msgs[1]["event"] != "state" {
		t.Fatalf("deprecated subscribe: %v", msgs)
	}
	f.fix("c1", 1)
	if msgs := drain(t, c); len(msgs) != 1 || msgs[0]["event"] != "state" {
		t.Fatalf("state after fix: %v", msgs)
	}
}

func TestErrors(t *testing.T) {
	f := newFixture(t, Options{MaxFrame: 4096})
	u, hash := f.user("dan", "UTC")
	t1 := f.tracker(u.ID, "d1")
	_, otherHash := f.user("eve", "UTC")
	c := f.hub.NewClient()
	cases := []struct {
		name   string
		msg    any
		code   float64
		action any
	}{
		{"not json", []byte("{nope"), 5, nil},
		{"array", []byte("[1,2]"), 5, nil},
		{"no action", map[string]any{"hash": hash}, 5, nil},
		{"unknown action", map[string]any{"action": "dance", "hash": hash}, 5, nil},
		{"wrong field type", map[string]any{"action": 7}, 7, nil},
		{"no hash", map[string]any{"action": "subscribe", "requests": []any{}}, 3, "subscription/subscribe"},
		{"bad hash", sub("XYZ", map[string]any{"type": "state", "trackers": []int64{t1.ID}}), 3, "subscription/subscribe"},
		{"unknown hash", sub(strings.Repeat("0", 32), map[string]any{"type": "state", "trackers": []int64{t1.ID}}), 4, "subscription/subscribe"},
		{"no requests", map[string]any{"action": "subscribe", "hash": hash}, 7, "subscription/subscribe"},
		{"empty requests", sub(hash), 7, "subscription/subscribe"},
		{"unknown type", sub(hash, map[string]any{"type": "weather"}), 7, "subscription/subscribe"},
		{"state without trackers", sub(hash, map[string]any{"type": "state"}), 7, "subscription/subscribe"},
		{"trackers not ints", sub(hash, map[string]any{"type": "state", "trackers": []string{"a"}}), 7, "subscription/subscribe"},
		{"bad format", sub(hash, map[string]any{"type": "state", "trackers": []int64{1}, "format": "tiny"}), 7, "subscription/subscribe"},
		{"no target", sub(hash, map[string]any{"type": "state_batch"}), 7, "subscription/subscribe"},
		{"bad target", sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "some"}}), 7, "subscription/subscribe"},
		{"selected without ids", sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "selected"}}), 7, "subscription/subscribe"},
		{"bad rate limit", sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "soon"}), 7, "subscription/subscribe"},
		{"negative rate limit", sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "-5s"}), 7, "subscription/subscribe"},
		{"iot_monitor all", sub(hash, map[string]any{"type": "iot_monitor", "target": map[string]any{"type": "all"}}), 7, "subscription/subscribe"},
		{"iot_monitor 11", sub(hash, map[string]any{"type": "iot_monitor", "target": map[string]any{"type": "selected", "tracker_ids": []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}}}), 7, "subscription/subscribe"},
		{"deprecated bad event", map[string]any{"action": "subscribe", "hash": hash, "trackers": []int64{1}, "events": []string{"weather"}}, 7, "subscription/subscribe"},
		{"too large", []byte(`{"action":"subscribe","hash":"` + strings.Repeat("a", 5000) + `"}`), 9, nil},
	}
	for _, tc := range cases {
		send(c, tc.msg)
		msgs := drain(t, c)
		if len(msgs) != 1 {
			t.Errorf("%s: %d messages: %v", tc.name, len(msgs), msgs)
			continue
		}
		m := msgs[0]
		status, _ := m["status"].(map[string]any)
		if m["type"] != "error" || status == nil || status["code"] != tc.code || status["description"] == "" {
			t.Errorf("%s: %v, want error code %v", tc.name, m, tc.code)
		}
		if a, ok := m["action"]; !ok || a != tc.action {
			t.Errorf("%s: action %v, want %v", tc.name, m["action"], tc.action)
		}
	}
	// Still usable, and a second user's hash on the same connection is refused.
	send(c, sub(hash, map[string]any{"type": "state", "trackers": []int64{t1.ID}}))
	if msgs := drain(t, c); len(msgs) < 1 || msgs[0]["type"] != "response" {
		t.Fatalf("subscribe after errors: %v", msgs)
	}
	send(c, sub(otherHash, map[string]any{"type": "state", "trackers": []int64{t1.ID}}))
	if msgs := drain(t, c); len(msgs) != 1 || msgs[0]["status"].(map[string]any)["code"] != 11.0 {
		t.Fatalf("other user's hash on the connection: %v", msgs)
	}
}

func TestStateBatchRateLimitAndMerge(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("fay", "UTC")
	t1 := f.tracker(u.ID, "f1")
	f.tracker(u.ID, "f2")
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "selected", "tracker_ids": []int64{t1.ID}}, "rate_limit": "5s"}))
	drain(t, c)
	for i := 0; i < 10; i++ {
		f.fix("f1", float64(i))
		f.fix("f2", float64(i)) // not subscribed
	}
	now := *f.now.Load()
	if c.flush(now.Add(4*time.Second), nil); c.Outbox().Len() != 0 {
		t.Fatalf("batch sent before rate_limit elapsed")
	}
	c.flush(now.Add(5*time.Second), nil)
	msgs := drain(t, c)
	if len(msgs) != 1 {
		t.Fatalf("want one batch, got %v", msgs)
	}
	entries := msgs[0]["data"].([]any)
	if len(entries) != 1 {
		t.Fatalf("batch has %d entries, want 1 (latest of t1 only)", len(entries))
	}
	lat := entries[0].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)["lat"]
	if lat != 9.0 {
		t.Errorf("batch carries lat %v, want the latest (9)", lat)
	}
	// Nothing changed: nothing is sent.
	c.flush(now.Add(20*time.Second), nil)
	if n := c.Outbox().Len(); n != 0 {
		t.Errorf("%d messages without changes", n)
	}
}

func TestSlowClientMergesAndCloses(t *testing.T) {
	f := newFixture(t, Options{SoftQueue: 8, StuckAfter: 10 * time.Second})
	u, hash := f.user("gus", "UTC")
	t1 := f.tracker(u.ID, "g1")
	t2 := f.tracker(u.ID, "g2")
	c := f.hub.NewClient()
	fast := f.hub.NewClient()
	for _, cl := range []*Client{c, fast} {
		send(cl, sub(hash, map[string]any{"type": "state", "trackers": []int64{t1.ID, t2.ID}}))
	}
	drain(t, fast)
	for i := 0; i < 100; i++ {
		f.fix("g1", float64(i))
		f.fix("g2", float64(i))
		if got := len(drain(t, fast)); got != 2 {
			t.Fatalf("fast client got %d events for one round, want 2", got)
		}
	}
	if n := c.Outbox().Len(); n > 8 {
		t.Fatalf("slow client queue grew to %d past the soft limit 8", n)
	}
	// Once it drains, it gets each tracker's latest state, nothing stale.
	drain(t, c)
	c.flush(*f.now.Load(), nil)
	msgs := drain(t, c)
	if len(msgs) != 2 {
		t.Fatalf("after draining: %d messages, want 2 merged states", len(msgs))
	}
	for _, m := range msgs {
		lat := m["data"].(map[string]any)["gps"].(map[string]any)["location"].(map[string]any)["lat"]
		if lat != 99.0 {
			t.Errorf("merged state lat %v, want 99", lat)
		}
	}
	// A client that never drains is closed with 1008.
	for i := 0; i < 20; i++ {
		f.fix("g1", float64(i))
	}
	c.flush(*f.now.Load(), nil)
	f.advance(11 * time.Second)
	c.flush(*f.now.Load(), nil)
	if closed, code, _ := c.Outbox().Closed(); !closed || code != CloseTooSlow {
		t.Fatalf("stuck client: closed %v code %d, want 1008", closed, code)
	}
	// The fast one carries on.
	f.fix("g2", 1)
	if got := len(drain(t, fast)); got == 0 {
		t.Fatal("fast client lost events when the slow one was closed")
	}
}

func TestLifecycleAndLogout(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("hal", "UTC")
	t1 := f.tracker(u.ID, "h1")
	c := f.hub.NewClient()
	apiKey, err := f.auth.CreateAPIKey(f.ctx, u.ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	keyClient := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state", "trackers": []int64{t1.ID}}))
	send(keyClient, sub(apiKey.Hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}}))
	drain(t, c)
	drain(t, keyClient)
	if err := f.reg.SetBlocked(f.ctx, t1.ID, true); err != nil {
		t.Fatal(err)
	}
	msgs := drain(t, c)
	if len(msgs) != 1 || msgs[0]["event"] != "lifecycle" || fmt.Sprint(msgs[0]["data"]) != fmt.Sprintf("map[lifecycle_event:block source_id:%d]", t1.SourceID) {
		t.Fatalf("block: %v", msgs)
	}
	if _, err := f.reg.Apply(f.ctx, &state.Fix{DeviceID: "h1"}); err == nil {
		t.Fatal("blocked tracker accepted a fix")
	}
	if err := f.reg.SetBlocked(f.ctx, t1.ID, false); err != nil {
		t.Fatal(err)
	}
	msgs = drain(t, c)
	if len(msgs) != 2 || msgs[0]["event"] != "lifecycle" || msgs[1]["event"] != "state" {
		t.Fatalf("unblock: want lifecycle then state, got %v", msgs)
	}
	if msgs := drain(t, keyClient); len(msgs) != 2 {
		t.Fatalf("API key client: want block and unblock, got %v", msgs)
	}
	if err := f.auth.Logout(f.ctx, hash); err != nil {
		t.Fatal(err)
	}
	msgs = drain(t, c)
	if len(msgs) != 1 || msgs[0]["event"] != "logout" || msgs[0]["data"] != "session closed" {
		t.Fatalf("logout: %v", msgs)
	}
	if closed, _, _ := c.Outbox().Closed(); !closed {
		t.Fatal("client not closed after logout")
	}
	// The API key's subscription is not affected by the session's logout.
	f.fix("h1", 3)
	if closed, _, _ := keyClient.Outbox().Closed(); closed {
		t.Fatal("API key client closed by another credential's logout")
	}
	if f.hub.Clients() != 1 {
		t.Errorf("hub holds %d clients, want 1", f.hub.Clients())
	}
}

func TestUnsubscribe(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("ida", "UTC")
	t1 := f.tracker(u.ID, "i1")
	c := f.hub.NewClient()
	send(c, sub(hash, map[string]any{"type": "state", "trackers": []int64{t1.ID}}))
	drain(t, c)
	send(c, map[string]any{"action": "unsubscribe", "hash": hash, "requests": []map[string]any{{"type": "state", "trackers": []int64{t1.ID}}}})
	msgs := drain(t, c)
	if len(msgs) != 1 || msgs[0]["action"] != "subscription/unsubscribe" || msgs[0]["type"] != "response" {
		t.Fatalf("unsubscribe: %v", msgs)
	}
	f.fix("i1", 5)
	if msgs := drain(t, c); len(msgs) != 0 {
		t.Fatalf("events after unsubscribe: %v", msgs)
	}
	c.Close()
	if f.hub.Clients() != 0 {
		t.Errorf("closed client still in the hub")
	}
}

func TestParseRateLimit(t *testing.T) {
	for in, want := range map[string]time.Duration{"5s": 5 * time.Second, "500ms": 500 * time.Millisecond, "1m": time.Minute, "2": 2 * time.Second, "0.5": 500 * time.Millisecond} {
		got, err := ParseRateLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseRateLimit(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1s", "5 s", "48h", "1e999", "NaN", "-1", "86401"} {
		if _, err := ParseRateLimit(in); err == nil {
			t.Errorf("ParseRateLimit(%q) accepted", in)
		}
	}
	// In a request, a JSON number is seconds too.
	for raw, want := range map[string]time.Duration{`"5s"`: 5 * time.Second, `5`: 5 * time.Second, `0.25`: 250 * time.Millisecond, `0`: 0} {
		got, err := rateLimit(json.RawMessage(raw))
		if err != nil || got != want {
			t.Errorf("rateLimit(%s) = %v, %v; want %v", raw, got, err, want)
		}
	}
	for _, raw := range []string{`-1`, `1e9`, `true`, `{}`, `[5]`} {
		_, err := rateLimit(json.RawMessage(raw))
		if err == nil || !strings.Contains(err.Error(), "rate_limit") {
			t.Errorf("rateLimit(%s): %v, want an error naming rate_limit", raw, err)
		}
	}
}

func FuzzParseAction(f *testing.F) {
	for _, s := range []string{
		`{"action":"subscribe","hash":"0123456789abcdef0123456789abcdef","requests":[{"type":"state","trackers":[1,2]}]}`,
		`{"action":"subscribe","hash":"x","requests":[{"type":"state_batch","target":{"type":"selected","tracker_ids":[1]},"rate_limit":"5s","format":"compact"}]}`,
		`{"action":"unsubscribe","hash":"x","trackers":[1],"events":["state"]}`,
		`{"action":"subscribe","hash":"x","requests":[{"type":"iot_monitor","target":{"type":"selected","tracker_ids":[1]}}]}`,
		`{"action":"subscribe","hash":"x","requests":[{"type":"readings_batch","target":{"type":"all"},"rate_limit":2.5,"sensor_type":"fuel"}]}`,
		`{"action":"subscribe","hash":"x","requests":[{"type":"state","trackers":[1,null]}]}`,
		`[]`, `null`, `{"action":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, err := ParseAction(msg)
		if err != nil {
			var pe *ParseError
			if !errorsAs(err, &pe) || pe.Err == nil {
				t.Fatalf("error %v is not a ParseError", err)
			}
			out := encodeError(pe.Action, pe.Err, pe.Data)
			if !json.Valid(out) {
				t.Fatalf("error message is not JSON: %q", out)
			}
			return
		}
		if a.Name != ActionSubscribe && a.Name != ActionUnsubscribe || a.Hash == "" || len(a.Requests) == 0 {
			t.Fatalf("accepted an invalid action: %+v", a)
		}
	})
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestSharedBatchesAndTicks(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("sue", "UTC")
	f.tracker(u.ID, "s1")
	f.tracker(u.ID, "s2")
	a, b := f.hub.NewClient(), f.hub.NewClient()
	for _, c := range []*Client{a, b} {
		send(c, sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "50ms"}))
		c.Outbox().Drain(nil, 0)
	}
	f.fix("s1", 1)
	f.fix("s2", 2)
	at := f.now.Load().Add(time.Second)
	cache := newBatchCache()
	for _, c := range []*Client{a, b} {
		if wake := c.flush(at, cache); !wake.IsZero() {
			t.Errorf("client still due at %v after its batch", wake)
		}
	}
	ma, mb := a.Outbox().Drain(nil, 0), b.Outbox().Drain(nil, 0)
	if len(ma) != 1 || len(mb) != 1 || &ma[0].Data[0] != &mb[0].Data[0] {
		t.Fatalf("the two clients' batches are not one shared encoding: %d, %d messages", len(ma), len(mb))
	}
	// The next batch may go 50ms later, on a whole 10ms tick.
	f.fix("s1", 3)
	wake := a.flush(at, cache)
	if want := at.Add(50 * time.Millisecond); !wake.Equal(want) {
		t.Errorf("next batch at %v, want %v", wake, want)
	}
	for _, tc := range []struct{ sent, want string }{
		{"10:00:00.000", "10:00:00.050"},
		{"10:00:00.004", "10:00:00.050"}, // handled late in its tick: stays on the tick
		{"10:00:00.010", "10:00:00.060"}, // not held to a grid of 50ms: a change waits at most 50ms and a tick
		{"10:00:00.049", "10:00:00.100"},
		{"10:00:00.051", "10:00:00.100"},
	} {
		sent, _ := time.Parse("2006-01-02 15:04:05.000", "2026-11-23 "+tc.sent)
		want, _ := time.Parse("2006-01-02 15:04:05.000", "2026-11-23 "+tc.want)
		if got := nextBatch(sent, 50*time.Millisecond, 10*time.Millisecond); !got.Equal(want) {
			t.Errorf("nextBatch(%s) = %s, want %s", tc.sent, got.Format("15:04:05.000"), tc.want)
		}
	}
}

// TestFlushAllInParallel: a tick with many due clients is flushed on
// several goroutines, and every client still gets its (shared) batch.
func TestFlushAllInParallel(t *testing.T) {
	f := newFixture(t, Options{})
	u, hash := f.user("pat", "UTC")
	f.tracker(u.ID, "p1")
	cs := make([]*Client, 1200)
	for i := range cs {
		cs[i] = f.hub.NewClient()
		send(cs[i], sub(hash, map[string]any{"type": "state_batch", "target": map[string]any{"type": "all"}, "rate_limit": "10ms"}))
		cs[i].Outbox().Drain(nil, 0)
	}
	f.fix("p1", 7)
	wakes := flushAll(cs, f.now.Load().Add(time.Second), newBatchCache(), nil)
	var first []byte
	for i, c := range cs {
		if !wakes[i].IsZero() {
			t.Fatalf("client %d still due", i)
		}
		msgs := c.Outbox().Drain(nil, 0)
		if len(msgs) != 1 {
			t.Fatalf("client %d got %d messages", i, len(msgs))
		}
		if first == nil {
			first = msgs[0].Data
		} else if string(first) != string(msgs[0].Data) {
			t.Fatalf("client %d got a different batch", i)
		}
	}
}
