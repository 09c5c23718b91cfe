package demo

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

func newRegistry(t *testing.T) (*state.Registry, *bus.Memory, int64) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "demo.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := bus.NewMemory()
	reg := state.New(st, b, state.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "demo", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return reg, b, uid
}

func TestSeedIdempotent(t *testing.T) {
	ctx := context.Background()
	reg, _, uid := newRegistry(t)
	first, err := Seed(ctx, reg, uid, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 5 {
		t.Fatalf("%d trackers", len(first))
	}
	for i, tr := range first {
		if want := DeviceID(i + 1); tr.DeviceID != want {
			t.Errorf("tracker %d device %q, want %q", i, tr.DeviceID, want)
		}
		if tr.UserID != uid || tr.Label == "" {
			t.Errorf("tracker %+v", tr)
		}
	}
	if first[0].DeviceID != "demo-001" || first[0].Label != "Van 01" || first[1].Label != "Truck 02" {
		t.Errorf("first trackers %q %q / %q", first[0].DeviceID, first[0].Label, first[1].Label)
	}
	again, err := Seed(ctx, reg, uid, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 7 {
		t.Fatalf("%d trackers on reseed", len(again))
	}
	for i := range first {
		if again[i].ID != first[i].ID {
			t.Errorf("tracker %s recreated: id %d, was %d", again[i].DeviceID, again[i].ID, first[i].ID)
		}
	}
	if n := len(reg.Trackers(uid)); n != 7 {
		t.Errorf("user has %d trackers, want 7", n)
	}
	if ts, err := Seed(ctx, reg, uid, 0); err != nil || len(ts) != 0 {
		t.Errorf("Seed 0: %v %v", ts, err)
	}
}

func TestRunMoves(t *testing.T) {
	reg, b, uid := newRegistry(t)
	trackers, err := Seed(context.Background(), reg, uid, 6)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64][]*fleet.State{}
	cancelSub := b.Subscribe(func(m *bus.Message) {
		if m.Kind == bus.KindState {
			mu.Lock()
			seen[m.TrackerID] = append(seen[m.TrackerID], m.State)
			mu.Unlock()
		}
	})
	defer cancelSub()

	sim := NewSimulator(reg, trackers, SimOptions{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := sim.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run returned %v, want the context's error", err)
	}

	mu.Lock()
	defer mu.Unlock()
	moving, moved := 0, 0
	for _, tr := range trackers {
		states := seen[tr.ID]
		if len(states) < 2 {
			t.Fatalf("tracker %s reported %d times", tr.DeviceID, len(states))
		}
		first, last := states[0].GPS.Location, states[len(states)-1].GPS.Location
		if first == nil || last == nil {
			t.Fatalf("tracker %s without location", tr.DeviceID)
		}
		if d := distance(*last, berlin); d > 6000 {
			t.Errorf("tracker %s is %.0f m from the centre", tr.DeviceID, d)
		}
		if *first != *last {
			moved++
		}
		s, _ := reg.State(tr.ID)
		if s.MovementStatus == fleet.Moving {
			moving++
			if s.GPS.Speed < 20 || s.GPS.Speed > 60 {
				t.Errorf("tracker %s moving at %d km/h", tr.DeviceID, s.GPS.Speed)
			}
		}
		if s.ConnectionStatus != fleet.Active || s.BatteryLevel == nil || s.GPS.SignalLevel == nil || s.Ignition == nil {
			t.Errorf("tracker %s state %+v", tr.DeviceID, s)
		}
	}
	if moved == 0 || moving == 0 {
		t.Errorf("%d trackers moved, %d moving", moved, moving)
	}
	if moving == len(trackers) {
		t.Errorf("every tracker is moving; some should start parked")
	}
}

func TestRunSkipsBlocked(t *testing.T) {
	ctx := context.Background()
	reg, _, uid := newRegistry(t)
	trackers, err := Seed(ctx, reg, uid, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.SetBlocked(ctx, trackers[0].ID, true); err != nil {
		t.Fatal(err)
	}
	sim := NewSimulator(reg, trackers, SimOptions{Interval: 5 * time.Millisecond})
	rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := sim.Run(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run: %v", err)
	}
	if s, _ := reg.State(trackers[0].ID); s.GPS.Location != nil {
		t.Errorf("blocked tracker moved")
	}
	if s, _ := reg.State(trackers[1].ID); s.GPS.Location == nil {
		t.Errorf("unblocked tracker did not report")
	}
}

// TestReleaseStopsReports: a released tracker gets no simulated fix
// after Release returns, while the others go on.
func TestReleaseStopsReports(t *testing.T) {
	ctx := context.Background()
	reg, b, uid := newRegistry(t)
	trackers, err := Seed(ctx, reg, uid, 2)
	if err != nil {
		t.Fatal(err)
	}
	sim := NewSimulator(reg, trackers, SimOptions{Interval: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	var mu sync.Mutex
	after := map[int64]int{} // states published after the release
	released := false
	defer b.Subscribe(func(m *bus.Message) {
		mu.Lock()
		if released && m.Kind == bus.KindState {
			after[m.TrackerID]++
		}
		mu.Unlock()
	})()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sim.Run(rctx) }()
	for {
		if s, _ := reg.State(trackers[0].ID); s.GPS.Location != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !sim.Release(trackers[0].DeviceID) {
		t.Fatal("Release of a simulated device reported false")
	}
	mu.Lock()
	released = true
	mu.Unlock()
	if sim.Release(trackers[0].DeviceID) || sim.Release("not-simulated") {
		t.Error("a second Release, or one of an unknown device, reported true")
	}
	for {
		mu.Lock()
		n := after[trackers[1].ID]
		mu.Unlock()
		if n >= 10 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if n := after[trackers[0].ID]; n != 0 {
		t.Errorf("the released tracker got %d simulated fixes", n)
	}
}

// TestStepStatuses drives the simulation without a clock and checks that
// the stopping vehicles go through moving, stopped and parked.
func TestStepStatuses(t *testing.T) {
	trackers := make([]*fleet.Tracker, 9)
	for i := range trackers {
		trackers[i] = &fleet.Tracker{DeviceID: DeviceID(i + 1)}
	}
	sim := NewSimulator(nil, trackers, SimOptions{})
	type phase struct{ moving, idling, off bool }
	got := map[string]*phase{}
	for range 2000 {
		for _, v := range sim.vehicles {
			f := v.step(1)
			p := got[f.DeviceID]
			if p == nil {
				p = &phase{}
				got[f.DeviceID] = p
			}
			switch {
			case *f.Speed >= 3:
				p.moving = true
				if !*f.Ignition {
					t.Fatalf("%s drives with the engine off", f.DeviceID)
				}
			case *f.Ignition:
				p.idling = true
			default:
				p.off = true
			}
			if *f.Heading < 0 || *f.Heading >= 360 || *f.Battery < 0 || *f.Battery > 100 {
				t.Fatalf("fix %+v", f)
			}
			if d := distance(*f.Location, berlin); d > 6000 {
				t.Fatalf("%s is %.0f m from the centre", f.DeviceID, d)
			}
		}
	}
	stoppers := 0
	for dev, p := range got {
		if !p.moving {
			t.Errorf("%s never moved", dev)
		}
		if p.idling && p.off {
			stoppers++
		}
	}
	if stoppers == 0 {
		t.Errorf("no tracker both idled and parked: %v", got)
	}
}

func TestRoutesDeterministic(t *testing.T) {
	a, b := makeRoutes(4), makeRoutes(4)
	for k := range a {
		if len(a[k].pts) != len(b[k].pts) || a[k].length != b[k].length {
			t.Fatalf("route %d differs between calls", k)
		}
		if a[k].length < 3000 || a[k].length > 25000 {
			t.Errorf("route %d is %.0f m long", k, a[k].length)
		}
		// Walking the whole loop returns to the start.
		p0, _ := a[k].at(0)
		p1, _ := a[k].at(a[k].length)
		if math.Abs(p0.Lat-p1.Lat) > 1e-9 || math.Abs(p0.Lng-p1.Lng) > 1e-9 {
			t.Errorf("route %d is not closed", k)
		}
	}
}

func TestBearing(t *testing.T) {
	o := fleet.Location{Lat: 52.52, Lng: 13.405}
	for _, tc := range []struct {
		east, north, want float64
	}{{0, 100, 0}, {100, 0, 90}, {0, -100, 180}, {-100, 0, 270}} {
		got := bearing(o, offset(o, tc.east, tc.north))
		if d := math.Abs(math.Mod(got-tc.want+540, 360) - 180); d > 0.1 {
			t.Errorf("bearing to (%v, %v) = %v, want %v", tc.east, tc.north, got, tc.want)
		}
		if d := distance(o, offset(o, tc.east, tc.north)); math.Abs(d-100) > 0.5 {
			t.Errorf("distance %v, want 100", d)
		}
	}
}
