package history

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
	"github.com/fleetwire/fleetwire/internal/store/sqlstore"
)

type fixture struct {
	st  *sqlstore.Store
	reg *state.Registry
	rec *Recorder
	tr  *fleet.Tracker
	run chan error
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := bus.NewMemory()
	reg := state.New(st, b, state.Options{})
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "u", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := reg.CreateTracker(ctx, &fleet.Tracker{Label: "t", UserID: uid, DeviceID: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, reg: reg, rec: New(reg, st, opts), tr: tr, run: make(chan error, 1)}
	go func() { f.run <- f.rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-f.run
		b.Close()
		st.Close()
	})
	return f
}

func fix(at time.Time, lat float64, speed float64) *state.Fix {
	return &state.Fix{DeviceID: "dev", Time: at, Location: &fleet.Location{Lat: lat, Lng: 25}, Speed: &speed}
}

// TestApplyIsDurable: when Apply returns, the point is in the store; a fix
// without a location keeps the state only.
func TestApplyIsDurable(t *testing.T) {
	f := newFixture(t, Options{})
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	acc := 7.0
	fx := fix(at, 54.5, 40)
	fx.Accuracy = &acc
	if _, err := f.rec.Apply(t.Context(), fx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.rec.Apply(t.Context(), &state.Fix{DeviceID: "dev", Attributes: map[string]string{"x": "1"}}); err != nil {
		t.Fatal(err)
	}
	pts, err := f.st.Points(t.Context(), f.tr.ID, at.Add(-time.Hour), at.Add(time.Hour), 10)
	if err != nil || len(pts) != 1 || pts[0].Lat != 54.5 || pts[0].Speed != 40 || pts[0].Precision != 7 || !pts[0].Time.Equal(at) || pts[0].Buffered {
		t.Fatalf("%v %+v", err, pts)
	}
	old := fix(time.Now().Add(-time.Hour), 54.6, 0)
	if _, err := f.rec.Apply(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	pts, _ = f.st.Points(t.Context(), f.tr.ID, old.Time.Add(-time.Second), old.Time.Add(time.Second), 10)
	if len(pts) != 1 || !pts[0].Buffered {
		t.Fatalf("a fix sent an hour late is buffered: %+v", pts)
	}
}

// TestApplyAll takes fixes in order up to the first the state refuses,
// and all their points are stored when it returns.
func TestApplyAll(t *testing.T) {
	f := newFixture(t, Options{})
	at := time.Now().Add(-time.Minute).UTC()
	fixes := []*state.Fix{fix(at, 1, 10), fix(at.Add(time.Second), 2, 10), {DeviceID: "nobody", Location: &fleet.Location{Lat: 3}}, fix(at.Add(3*time.Second), 4, 10)}
	n, err := f.rec.ApplyAll(t.Context(), fixes)
	if n != 2 || !errors.Is(err, state.ErrUnknownDevice) {
		t.Fatalf("%d %v", n, err)
	}
	pts, _ := f.st.Points(t.Context(), f.tr.ID, at.Add(-time.Hour), at.Add(time.Hour), 10)
	if len(pts) != 2 {
		t.Fatalf("%d points", len(pts))
	}
}

// TestWriteFailure: when the store cannot write, Apply fails, so the
// device is not acknowledged.
func TestWriteFailure(t *testing.T) {
	f := newFixture(t, Options{})
	f.st.Close()
	if _, err := f.rec.Apply(t.Context(), fix(time.Now(), 1, 1)); err == nil {
		t.Fatal("Apply succeeded with a closed store")
	}
}

// TestAsyncDrops: points recorded without waiting are dropped, not
// blocking, when the queue is full.
func TestAsyncDrops(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := state.New(st, bus.NewMemory(), state.Options{})
	uid, _ := st.CreateUser(t.Context(), &fleet.User{Login: "u", PasswordHash: "x"})
	if _, err := reg.CreateTracker(t.Context(), &fleet.Tracker{Label: "t", UserID: uid, DeviceID: "dev"}); err != nil {
		t.Fatal(err)
	}
	rec := New(reg, st, Options{MaxQueue: 2}) // not running: nothing drains
	before := mDropped.Value()
	for i := range 5 {
		if _, err := rec.Async().Apply(t.Context(), fix(time.Now().Add(time.Duration(i)*time.Second), 1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if got := mDropped.Value() - before; got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
}

func pt(at time.Time, lat float64, speed int) store.Point {
	return store.Point{Time: at, Lat: lat, Lng: 25, Speed: speed}
}

// TestSplit cuts a drive, a parking, a short stop and a silence.
func TestSplit(t *testing.T) {
	t0 := time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	var pts []store.Point
	add := func(n int, step time.Duration, speed int, dlat float64) {
		for range n {
			var at time.Time
			lat := 54.0
			if len(pts) > 0 {
				at, lat = pts[len(pts)-1].Time.Add(step), pts[len(pts)-1].Lat+dlat
			} else {
				at = t0
			}
			pts = append(pts, pt(at, lat, speed))
		}
	}
	add(60, 10*time.Second, 50, 0.001) // 10 minutes driving
	add(40, 10*time.Second, 0, 0)      // 6.5 minutes parked
	add(30, 10*time.Second, 40, 0.001) // driving
	add(6, 10*time.Second, 0, 0)       // a one-minute stop stays in the track
	add(30, 10*time.Second, 40, 0.001)
	add(1, 20*time.Minute, 40, 0.001) // a silence, then one more point
	tracks, parking := Split(pts, SplitOptions{})
	if len(tracks) != 3 {
		t.Fatalf("%d tracks", len(tracks))
	}
	if len(tracks[0].Points) != 60 || len(tracks[1].Points) != 66 || len(tracks[2].Points) != 1 {
		t.Fatalf("track sizes %d %d %d", len(tracks[0].Points), len(tracks[1].Points), len(tracks[2].Points))
	}
	if !parking[60] || !parking[99] || parking[100] || parking[130] {
		t.Fatal("parking marks")
	}
	// 59 steps of 0.001° of latitude.
	if want := 59 * 0.11119; math.Abs(tracks[0].Length-want) > 0.01 || tracks[0].MaxSpeed != 50 {
		t.Fatalf("length %v max %d", tracks[0].Length, tracks[0].MaxSpeed)
	}
	if tracks[0].ID() != t0.Unix() || tracks[0].AvgSpeed() < 30 {
		t.Fatalf("id %d avg %d", tracks[0].ID(), tracks[0].AvgSpeed())
	}
	m := Merge(tracks)
	if len(m.Points) != 127 || m.Length <= tracks[0].Length+tracks[1].Length {
		t.Fatalf("merged %d points %v km", len(m.Points), m.Length)
	}
}

// TestSimplify keeps the shape and the ends, and honours the limit.
func TestSimplify(t *testing.T) {
	var pts []store.Point
	t0 := time.Now()
	for i := range 1000 { // a straight line north, then east
		lat, lng := 54.0+float64(min(i, 500))*1e-4, 25.0+float64(max(0, i-500))*1e-4
		pts = append(pts, store.Point{Time: t0.Add(time.Duration(i) * time.Second), Lat: lat, Lng: lng})
	}
	s := Simplify(pts, 5, 0)
	if len(s) != 3 || s[0] != pts[0] || s[2] != pts[999] || s[1] != pts[500] {
		t.Fatalf("%d points: %+v", len(s), s)
	}
	if got := Simplify(pts, 0, 10); len(got) != 10 || got[0] != pts[0] || got[9] != pts[999] {
		t.Fatalf("limit: %d", len(got))
	}
}
