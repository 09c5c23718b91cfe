package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
	"github.com/fleetwire/fleetwire/internal/store/sqlite"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder keeps every message published on the bus.
type recorder struct {
	mu   sync.Mutex
	msgs []*bus.Message
}

func (r *recorder) add(m *bus.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

// take returns the messages so far and forgets them.
func (r *recorder) take() []*bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.msgs
	r.msgs = nil
	return out
}

type fixture struct {
	st    store.Store
	bus   *bus.Memory
	reg   *Registry
	clk   *clock
	rec   *recorder
	user  int64
	opts  Options
	dbDir string
}

const (
	idleAfter    = 2 * time.Minute
	offlineAfter = 10 * time.Minute
	parkedAfter  = 5 * time.Minute
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	uid, err := st.CreateUser(ctx, &fleet.User{Login: "owner", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	f := &fixture{st: st, bus: bus.NewMemory(), clk: clk, rec: &recorder{}, user: uid, dbDir: dir}
	f.opts = Options{
		IdleAfter: idleAfter, OfflineAfter: offlineAfter, ParkedAfter: parkedAfter,
		Now: clk.Now, Logger: slog.New(slog.DiscardHandler),
	}
	f.reg = New(st, f.bus, f.opts)
	if err := f.reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.bus.Subscribe(f.rec.add))
	return f
}

func (f *fixture) tracker(t *testing.T, device string) *fleet.Tracker {
	t.Helper()
	tr, err := f.reg.CreateTracker(context.Background(), &fleet.Tracker{Label: device, UserID: f.user, DeviceID: device, Model: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func ptr[T any](v T) *T { return &v }

func fix(device string, lat, lng, speed float64) *Fix {
	return &Fix{DeviceID: device, Location: &fleet.Location{Lat: lat, Lng: lng}, Speed: &speed}
}

func (f *fixture) apply(t *testing.T, fx *Fix) *fleet.State {
	t.Helper()
	s, err := f.reg.Apply(context.Background(), fx)
	if err != nil {
		t.Fatalf("Apply %s: %v", fx.DeviceID, err)
	}
	return s
}

func (f *fixture) state(t *testing.T, id int64) *fleet.State {
	t.Helper()
	s, ok := f.reg.State(id)
	if !ok {
		t.Fatalf("no state for tracker %d", id)
	}
	return s
}

// kinds summarises messages as "state", "tracker", "lifecycle:block" ...
func kinds(msgs []*bus.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		switch m.Kind {
		case bus.KindState:
			out[i] = "state"
		case bus.KindTracker:
			out[i] = "tracker"
		case bus.KindLifecycle:
			out[i] = "lifecycle:" + m.Lifecycle
		case bus.KindLogout:
			out[i] = "logout"
		}
	}
	return out
}

func sameKinds(t *testing.T, msgs []*bus.Message, want ...string) {
	t.Helper()
	got := kinds(msgs)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("published %v, want %v", got, want)
	}
}

func TestCreateTracker(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker(t, "dev-a")
	if tr.ID == 0 || tr.SourceID == 0 || tr.DeviceID != "dev-a" || tr.UserID != f.user {
		t.Fatalf("tracker %+v", tr)
	}
	msgs := f.rec.take()
	sameKinds(t, msgs, "tracker")
	m := msgs[0]
	if m.Tracker != tr || m.TrackerID != tr.ID || m.SourceID != tr.SourceID || m.UserID != f.user {
		t.Errorf("message %+v", m)
	}
	s := f.state(t, tr.ID)
	if s.ConnectionStatus != fleet.JustRegistered || s.MovementStatus != fleet.Parked || s.SourceID != tr.SourceID || s.GPS.Location != nil {
		t.Errorf("initial state %+v", s)
	}
	if got, ok := f.reg.TrackerByDevice("dev-a"); !ok || got.ID != tr.ID {
		t.Errorf("TrackerByDevice: %v %v", got, ok)
	}
	if got, ok := f.reg.Tracker(tr.ID); !ok || got != tr {
		t.Errorf("Tracker: %v %v", got, ok)
	}
	other := f.tracker(t, "dev-b")
	if ts := f.reg.Trackers(0); len(ts) != 2 || ts[0].ID != tr.ID || ts[1].ID != other.ID {
		t.Errorf("Trackers(0) = %v", ts)
	}
	if ts := f.reg.Trackers(f.user + 1); len(ts) != 0 {
		t.Errorf("Trackers of another user = %v", ts)
	}
	if f.reg.Count() != 2 {
		t.Errorf("Count = %d", f.reg.Count())
	}
	// A device id in use cannot be registered twice.
	if _, err := f.reg.CreateTracker(context.Background(), &fleet.Tracker{Label: "dup", UserID: f.user, DeviceID: "dev-a"}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate device id: %v", err)
	}
}

func TestApplyRejects(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker(t, "dev-a")
	if err := f.reg.SetBlocked(context.Background(), tr.ID, true); err != nil {
		t.Fatal(err)
	}
	f.rec.take()
	if _, err := f.reg.Apply(context.Background(), fix("nobody", 1, 2, 0)); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("unknown device: %v", err)
	}
	if _, err := f.reg.Apply(context.Background(), fix("dev-a", 1, 2, 0)); !errors.Is(err, ErrBlocked) {
		t.Errorf("blocked tracker: %v", err)
	}
	if msgs := f.rec.take(); len(msgs) != 0 {
		t.Errorf("rejected fixes published %v", kinds(msgs))
	}
	if s := f.state(t, tr.ID); s.GPS.Location != nil || s.ConnectionStatus != fleet.JustRegistered {
		t.Errorf("rejected fix changed the state: %+v", s)
	}
}

func TestApplyState(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker(t, "dev-a")
	f.rec.take()
	taken := f.clk.Now().Add(-30 * time.Second)
	s := f.apply(t, &Fix{
		DeviceID: "dev-a", Time: taken.Add(400 * time.Millisecond),
		Location: &fleet.Location{Lat: 52.5, Lng: 13.4},
		Speed:    ptr(42.4), Heading: ptr(-90.0), Alt: ptr(33.6), Accuracy: ptr(4.5),
		Battery: ptr(120.0), Satellites: ptr(6), Ignition: ptr(true),
		Inputs: []bool{true, false}, Attributes: map[string]string{"fuel": "51"},
	})
	if s.TrackerID != tr.ID || s.SourceID != tr.SourceID {
		t.Errorf("ids %d/%d", s.TrackerID, s.SourceID)
	}
	if !s.LastUpdate.Equal(taken) || !s.GPS.Updated.Equal(taken) || !s.IngestedAt.Equal(f.clk.Now()) {
		t.Errorf("times: last %v gps %v ingested %v", s.LastUpdate, s.GPS.Updated, s.IngestedAt)
	}
	if s.GPS.Speed != 42 || s.GPS.Heading != 270 || s.GPS.Alt != 34 || *s.GPS.Precision != 5 || *s.GPS.SignalLevel != 50 {
		t.Errorf("gps %+v", s.GPS)
	}
	if *s.BatteryLevel != 100 || !*s.Ignition || len(s.Inputs) != 2 || s.Additional["fuel"].Value != "51" {
		t.Errorf("state %+v", s)
	}
	if s.ConnectionStatus != fleet.Active || s.MovementStatus != fleet.Moving || !s.MovementStatusUpdate.Equal(taken) {
		t.Errorf("statuses %s/%s at %v", s.ConnectionStatus, s.MovementStatus, s.MovementStatusUpdate)
	}

	// A time too far in the future is replaced by the time of receipt.
	s = f.apply(t, &Fix{DeviceID: "dev-a", Time: f.clk.Now().Add(time.Hour)})
	if !s.LastUpdate.Equal(f.clk.Now()) {
		t.Errorf("future time kept: %v", s.LastUpdate)
	}
	// A message without a position keeps the last one and the movement.
	if s.GPS.Location == nil || s.GPS.Location.Lat != 52.5 || s.MovementStatus != fleet.Moving || s.Additional["fuel"].Value != "51" {
		t.Errorf("state after a message without position: %+v", s)
	}
	msgs := f.rec.take()
	sameKinds(t, msgs, "state", "state")
	for _, m := range msgs {
		if m.TrackerID != tr.ID || m.UserID != f.user || m.SourceID != tr.SourceID {
			t.Errorf("message %+v", m)
		}
	}
	if msgs[1].State != f.state(t, tr.ID) {
		t.Error("last published state is not the current state")
	}
	if msgs[0].State.GPS.Speed != 42 || msgs[0].State.LastUpdate.Equal(msgs[1].State.LastUpdate) {
		t.Error("an earlier published state was modified")
	}
}

// TestApplyOrder: fixes applied one after the other are published in that
// order, and concurrent fixes end with the registry's state published last.
func TestApplyOrder(t *testing.T) {
	f := newFixture(t)
	a := f.tracker(t, "dev-a")
	b := f.tracker(t, "dev-b")
	f.rec.take()
	for i := range 20 {
		f.apply(t, fix("dev-a", float64(i), 0, 10))
	}
	for i, m := range f.rec.take() {
		if m.Kind != bus.KindState || m.State.GPS.Location.Lat != float64(i) {
			t.Fatalf("message %d: %v %+v", i, kinds([]*bus.Message{m}), m.State.GPS.Location)
		}
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				dev := "dev-a"
				if g%2 == 1 {
					dev = "dev-b"
				}
				if _, err := f.reg.Apply(context.Background(), fix(dev, float64(g), float64(i), 10)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	last := map[int64]*fleet.State{}
	n := 0
	for _, m := range f.rec.take() {
		if m.Kind == bus.KindState {
			last[m.TrackerID] = m.State
			n++
		}
	}
	if n != 400 {
		t.Errorf("%d states published, want 400", n)
	}
	for _, id := range []int64{a.ID, b.ID} {
		if last[id] != f.state(t, id) {
			t.Errorf("tracker %d: last published state is not the current one", id)
		}
	}
}

func TestMovement(t *testing.T) {
	f := newFixture(t)
	tr := f.tracker(t, "dev-a")
	ctx := context.Background()
	move := func() string { return f.state(t, tr.ID).MovementStatus }
	conn := func() string { return f.state(t, tr.ID).ConnectionStatus }

	if s := f.apply(t, fix("dev-a", 1, 1, 2)); s.MovementStatus != fleet.Parked {
		t.Errorf("below the moving speed: %s", s.MovementStatus)
	}
	if s := f.apply(t, fix("dev-a", 1, 1, 3)); s.MovementStatus != fleet.Moving {
		t.Errorf("at the moving speed: %s", s.MovementStatus)
	}
	f.clk.Add(10 * time.Second)
	s := f.apply(t, fix("dev-a", 1, 1, 0))
	if s.MovementStatus != fleet.Stopped || !s.MovementStatusUpdate.Equal(f.clk.Now()) {
		t.Errorf("after stopping: %s at %v", s.MovementStatus, s.MovementStatusUpdate)
	}
	stoppedAt := s.MovementStatusUpdate
	// Still stopped: the status time stays.
	f.clk.Add(time.Minute)
	if s := f.apply(t, fix("dev-a", 1, 1, 0)); s.MovementStatus != fleet.Stopped || !s.MovementStatusUpdate.Equal(stoppedAt) {
		t.Errorf("still stopped: %s at %v", s.MovementStatus, s.MovementStatusUpdate)
	}
	f.rec.take()
	// Stopped for ParkedAfter parks, on the timer. The device went quiet
	// a minute after stopping, so it turns idle first.
	f.clk.Add(parkedAfter - time.Minute - time.Second)
	f.reg.age(ctx)
	if move() != fleet.Stopped || conn() != fleet.Idle {
		t.Errorf("before %v stopped: %s/%s", parkedAfter, move(), conn())
	}
	sameKinds(t, f.rec.take(), "state")
	f.clk.Add(time.Second)
	f.reg.age(ctx)
	if move() != fleet.Parked || conn() != fleet.Idle {
		t.Errorf("after %v stopped: %s/%s", parkedAfter, move(), conn())
	}
	msgs := f.rec.take()
	sameKinds(t, msgs, "state")
	if st := msgs[0].State; st.MovementStatus != fleet.Parked || !st.MovementStatusUpdate.Equal(f.clk.Now()) {
		t.Errorf("published %+v", st)
	}

	// Ignition off parks at once, even from moving.
	f.apply(t, fix("dev-a", 1, 1, 50))
	fx := fix("dev-a", 1, 1, 0)
	fx.Ignition = ptr(false)
	if s := f.apply(t, fx); s.MovementStatus != fleet.Parked || conn() != fleet.Active {
		t.Errorf("ignition off: %s/%s", s.MovementStatus, conn())
	}
	// Ignition on and standing still stays parked.
	fx = fix("dev-a", 1, 1, 0)
	fx.Ignition = ptr(true)
	if s := f.apply(t, fx); s.MovementStatus != fleet.Parked {
		t.Errorf("ignition on, standing: %s", s.MovementStatus)
	}
}

func TestConnectionTimers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.tracker(t, "dev-a")
	quiet := f.tracker(t, "dev-never") // never reports: stays just registered
	f.apply(t, fix("dev-a", 1, 1, 30))
	f.rec.take()

	f.clk.Add(idleAfter - time.Second)
	f.reg.age(ctx)
	if msgs := f.rec.take(); len(msgs) != 0 {
		t.Fatalf("aged early: %v", kinds(msgs))
	}
	f.clk.Add(time.Second)
	f.reg.age(ctx)
	s := f.state(t, a.ID)
	if s.ConnectionStatus != fleet.Idle || s.MovementStatus != fleet.Stopped {
		t.Errorf("after %v quiet: %s/%s", idleAfter, s.ConnectionStatus, s.MovementStatus)
	}
	sameKinds(t, f.rec.take(), "state")
	f.reg.age(ctx)
	if msgs := f.rec.take(); len(msgs) != 0 {
		t.Errorf("aging twice published %v", kinds(msgs))
	}

	f.clk.Add(offlineAfter - idleAfter)
	f.reg.age(ctx)
	s = f.state(t, a.ID)
	if s.ConnectionStatus != fleet.Offline || s.MovementStatus != fleet.Parked {
		t.Errorf("after %v quiet: %s/%s", offlineAfter, s.ConnectionStatus, s.MovementStatus)
	}
	msgs := f.rec.take()
	sameKinds(t, msgs, "state")
	if msgs[0].State.IngestedAt != f.clk.Now() {
		t.Errorf("aged state ingested at %v", msgs[0].State.IngestedAt)
	}
	if s := f.state(t, quiet.ID); s.ConnectionStatus != fleet.JustRegistered {
		t.Errorf("silent tracker became %s", s.ConnectionStatus)
	}

	// A new fix makes it active again.
	if s := f.apply(t, fix("dev-a", 1, 1, 0)); s.ConnectionStatus != fleet.Active {
		t.Errorf("after a fix: %s", s.ConnectionStatus)
	}

	// A blocked tracker ages silently: the log keeps the change, the
	// listeners (the event hub) hear nothing.
	if err := f.reg.SetBlocked(ctx, a.ID, true); err != nil {
		t.Fatal(err)
	}
	f.rec.take()
	var heard recorder
	defer f.reg.Listen(heard.add)()
	f.clk.Add(offlineAfter)
	f.reg.age(ctx)
	if s := f.state(t, a.ID); s.ConnectionStatus != fleet.Offline {
		t.Errorf("blocked tracker: %s", s.ConnectionStatus)
	}
	sameKinds(t, f.rec.take(), "state")
	if msgs := heard.take(); len(msgs) != 0 {
		t.Errorf("blocked tracker announced %v", kinds(msgs))
	}
}

// TestRun drives the timers through Run with a short tick, and checks that
// Run flushes on the way out.
func TestRun(t *testing.T) {
	f := newFixture(t)
	f.opts.TickEvery = 5 * time.Millisecond
	f.opts.FlushEvery = time.Hour
	f.reg = New(f.st, f.bus, f.opts)
	if err := f.reg.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr := f.tracker(t, "dev-a")
	f.apply(t, fix("dev-a", 1, 2, 30))
	f.clk.Add(offlineAfter)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.reg.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.state(t, tr.ID).ConnectionStatus != fleet.Offline {
		if time.Now().After(deadline) {
			t.Fatal("Run did not age the tracker")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	saved, err := f.st.States(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 1 || saved[0].TrackerID != tr.ID || saved[0].ConnectionStatus != fleet.Offline {
		t.Errorf("saved %+v", saved)
	}
}

func TestSetBlocked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tr := f.tracker(t, "dev-a")
	f.apply(t, fix("dev-a", 1, 2, 0))
	f.rec.take()

	if err := f.reg.SetBlocked(ctx, tr.ID, true); err != nil {
		t.Fatal(err)
	}
	msgs := f.rec.take()
	sameKinds(t, msgs, "tracker", "lifecycle:block")
	if !msgs[0].Tracker.Blocked || msgs[1].TrackerID != tr.ID || msgs[1].SourceID != tr.SourceID || msgs[1].UserID != f.user {
		t.Errorf("messages %+v %+v", msgs[0], msgs[1])
	}
	if got, _ := f.reg.Tracker(tr.ID); !got.Blocked {
		t.Error("tracker not blocked")
	}
	if tr.Blocked {
		t.Error("the tracker returned earlier was modified")
	}
	// Blocking again changes nothing.
	if err := f.reg.SetBlocked(ctx, tr.ID, true); err != nil {
		t.Fatal(err)
	}
	if msgs := f.rec.take(); len(msgs) != 0 {
		t.Errorf("blocking twice published %v", kinds(msgs))
	}

	if err := f.reg.SetBlocked(ctx, tr.ID, false); err != nil {
		t.Fatal(err)
	}
	msgs = f.rec.take()
	sameKinds(t, msgs, "tracker", "lifecycle:unblock", "state")
	if msgs[2].State != f.state(t, tr.ID) || msgs[2].State.GPS.Location == nil {
		t.Errorf("unblock published state %+v", msgs[2].State)
	}
	if _, err := f.reg.Apply(ctx, fix("dev-a", 1, 2, 0)); err != nil {
		t.Errorf("Apply after unblock: %v", err)
	}
	if err := f.reg.SetBlocked(ctx, 999, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tracker: %v", err)
	}
	// The store knows too.
	saved, err := f.st.Tracker(ctx, tr.ID)
	if err != nil || saved.Blocked {
		t.Errorf("stored tracker %+v %v", saved, err)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tr := f.tracker(t, "dev-a")
	f.apply(t, fix("dev-a", 1, 2, 0))
	f.rec.take()

	if err := f.reg.Delete(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	msgs := f.rec.take()
	sameKinds(t, msgs, "lifecycle:corrupt", "tracker")
	if m := msgs[0]; m.TrackerID != tr.ID || m.SourceID != tr.SourceID || m.UserID != f.user {
		t.Errorf("lifecycle message %+v", m)
	}
	if !msgs[1].Tracker.Deleted {
		t.Errorf("tracker message %+v", msgs[1].Tracker)
	}
	if _, ok := f.reg.Tracker(tr.ID); ok {
		t.Error("deleted tracker still listed")
	}
	if _, ok := f.reg.State(tr.ID); ok {
		t.Error("deleted tracker still has a state")
	}
	if _, ok := f.reg.TrackerByDevice("dev-a"); ok {
		t.Error("device id still taken")
	}
	if len(f.reg.Trackers(0)) != 0 || f.reg.Count() != 0 {
		t.Error("deleted tracker counted")
	}
	if _, err := f.reg.Apply(ctx, fix("dev-a", 1, 2, 0)); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("Apply after delete: %v", err)
	}
	if err := f.reg.Delete(ctx, tr.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if err := f.reg.SetBlocked(ctx, tr.ID, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("block after delete: %v", err)
	}
	// The device id can be registered again.
	again := f.tracker(t, "dev-a")
	if again.ID == tr.ID {
		t.Fatal("tracker id reused")
	}
	if s := f.apply(t, fix("dev-a", 3, 4, 0)); s.TrackerID != again.ID {
		t.Errorf("fix went to tracker %d", s.TrackerID)
	}
}

// TestDeleteBlockRace: blocking and deleting the same trackers at the same
// time never brings a deleted tracker back.
func TestDeleteBlockRace(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var ids []int64
	for i := range 40 {
		ids = append(ids, f.tracker(t, fmt.Sprintf("dev-%02d", i)).ID)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if err := f.reg.SetBlocked(ctx, id, true); err != nil && !errors.Is(err, ErrNotFound) {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := f.reg.Delete(ctx, id); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.reg.Count(); n != 0 {
		t.Errorf("%d deleted trackers came back", n)
	}
	for _, id := range ids {
		if _, ok := f.reg.Tracker(id); ok {
			t.Errorf("tracker %d listed after delete", id)
		}
	}
}

func TestFlushAndLoad(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.tracker(t, "dev-a")
	b := f.tracker(t, "dev-b")
	silent := f.tracker(t, "dev-c")
	fx := fix("dev-a", 52.5, 13.4, 44)
	fx.Battery = ptr(66.0)
	fx.Attributes = map[string]string{"fuel": "12"}
	want := f.apply(t, fx)
	f.apply(t, fix("dev-b", -33.9, 151.2, 0))
	if err := f.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing changed since: nothing to write.
	if err := f.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A change after the flush is not saved until the next one.
	f.clk.Add(time.Second)
	f.apply(t, fix("dev-b", -34, 151, 0))

	r2 := New(f.st, bus.NewMemory(), f.opts)
	if err := r2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if r2.Count() != 3 {
		t.Fatalf("loaded %d trackers", r2.Count())
	}
	got, ok := r2.State(a.ID)
	if !ok {
		t.Fatal("state of dev-a not loaded")
	}
	if got.SourceID != a.SourceID || got.TrackerID != a.ID || got.GPS.Location == nil || *got.GPS.Location != *want.GPS.Location ||
		got.GPS.Speed != 44 || got.MovementStatus != fleet.Moving || !got.LastUpdate.Equal(want.LastUpdate) ||
		got.BatteryLevel == nil || *got.BatteryLevel != 66 || got.Additional["fuel"].Value != "12" {
		t.Errorf("loaded %+v\nwant %+v", got, want)
	}
	if got, _ := r2.State(b.ID); got.GPS.Location.Lat != -33.9 {
		t.Errorf("dev-b loaded at %+v, want the flushed position", got.GPS.Location)
	}
	if got, _ := r2.State(silent.ID); got.ConnectionStatus != fleet.JustRegistered {
		t.Errorf("never-reporting tracker loaded as %+v", got)
	}
	if tr, ok := r2.TrackerByDevice("dev-a"); !ok || tr.ID != a.ID {
		t.Errorf("device index not loaded")
	}

	if err := f.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r3 := New(f.st, bus.NewMemory(), f.opts)
	if err := r3.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := r3.State(b.ID); got.GPS.Location.Lat != -34 {
		t.Errorf("dev-b loaded at %+v after the second flush", got.GPS.Location)
	}
}

// TestLoadSkipsDeleted: a deleted tracker and its saved state are not
// loaded.
func TestLoadSkipsDeleted(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tr := f.tracker(t, "dev-a")
	f.apply(t, fix("dev-a", 1, 2, 0))
	if err := f.reg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.Delete(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	r2 := New(f.st, bus.NewMemory(), f.opts)
	if err := r2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := r2.State(tr.ID); ok || r2.Count() != 0 {
		t.Error("deleted tracker loaded")
	}
}

// TestHandleBus: changes from other nodes of a cluster reach the registry:
// a new tracker, its states in the order of the log (an older one never
// replaces a newer one), the device message behind a state for the stream
// analyzer, and the deletion.
func TestHandleBus(t *testing.T) {
	f := newFixture(t)
	var heard recorder
	defer f.reg.Listen(heard.add)()
	tr := &fleet.Tracker{ID: 77, UserID: f.user, SourceID: 100077, DeviceID: "dev-remote", Label: "remote"}
	f.reg.HandleBus(&bus.Message{Kind: bus.KindTracker, UserID: f.user, TrackerID: tr.ID, Tracker: tr, Seq: 10})
	if got, ok := f.reg.TrackerByDevice("dev-remote"); !ok || got.ID != tr.ID {
		t.Fatal("tracker from another node not taken in")
	}
	newer := &fleet.State{TrackerID: tr.ID, SourceID: tr.SourceID, ConnectionStatus: fleet.Active, Seq: 12}
	rec := &fleet.Record{MsgTime: f.clk.Now(), Fields: []fleet.Field{{Name: "speed", Value: []byte("12")}}}
	f.reg.HandleBus(&bus.Message{Kind: bus.KindState, UserID: f.user, TrackerID: tr.ID, State: newer, Record: rec, Seq: 12, Prev: 0})
	if got, _ := f.reg.State(tr.ID); got != newer {
		t.Errorf("state from another node not taken in: %+v", got)
	}
	older := &fleet.State{TrackerID: tr.ID, SourceID: tr.SourceID, ConnectionStatus: fleet.Offline, Seq: 11}
	f.reg.HandleBus(&bus.Message{Kind: bus.KindState, UserID: f.user, TrackerID: tr.ID, State: older, Seq: 11})
	if got, _ := f.reg.State(tr.ID); got != newer {
		t.Error("older state replaced a newer one")
	}
	if h := f.reg.History(tr.ID); len(h) != 1 || h[0].Fields[0].Name != "speed" {
		t.Errorf("history %+v", h)
	}
	// A Sync message is taken in but not announced.
	synced := &fleet.State{TrackerID: tr.ID, SourceID: tr.SourceID, ConnectionStatus: fleet.Idle, Seq: 13}
	f.reg.HandleBus(&bus.Message{Kind: bus.KindState, UserID: f.user, TrackerID: tr.ID, State: synced, Seq: 13, Sync: true})
	if got, _ := f.reg.State(tr.ID); got != synced {
		t.Error("sync state not taken in")
	}
	gone := *tr
	gone.Deleted = true
	f.reg.HandleBus(&bus.Message{Kind: bus.KindTracker, UserID: f.user, TrackerID: tr.ID, Tracker: &gone, Seq: 14})
	if _, ok := f.reg.TrackerByDevice("dev-remote"); ok {
		t.Error("deleted tracker still known")
	}
	if got := kinds(heard.take()); fmt.Sprint(got) != "[tracker state tracker]" {
		t.Errorf("listeners heard %v, want tracker, the newer state, tracker", got)
	}
}

// TestTrackersByUser: a user's list comes from the registry's index by
// user, which follows creation, blocking, a tracker moving to another
// user (as the bus brings it) and deletion.
func TestTrackersByUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other, err := f.st.CreateUser(ctx, &fleet.User{Login: "other", PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := f.tracker(t, "dev-a"), f.tracker(t, "dev-b"), f.tracker(t, "dev-c")
	ids := func(user int64) string {
		var out []int64
		for _, tr := range f.reg.Trackers(user) {
			if tr.UserID != user && user != 0 {
				t.Errorf("tracker %d of user %d listed for user %d", tr.ID, tr.UserID, user)
			}
			out = append(out, tr.ID)
		}
		return fmt.Sprint(out)
	}
	want := func(user int64, trs ...*fleet.Tracker) {
		t.Helper()
		var w []int64
		for _, tr := range trs {
			w = append(w, tr.ID)
		}
		if got := ids(user); got != fmt.Sprint(w) {
			t.Fatalf("user %d: trackers %s, want %v", user, got, w)
		}
	}
	want(f.user, a, b, c)
	want(other)
	if err := f.reg.SetBlocked(ctx, b.ID, true); err != nil {
		t.Fatal(err)
	}
	if l := f.reg.Trackers(f.user); len(l) != 3 || !l[1].Blocked {
		t.Fatalf("after blocking: %+v", l)
	}
	moved := *c
	moved.UserID = other
	f.reg.takeTracker(&bus.Message{Kind: bus.KindTracker, UserID: other, TrackerID: c.ID, Tracker: &moved})
	want(f.user, a, b)
	want(other, c)
	if err := f.reg.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	want(f.user, b)
	want(0, b, c)
	f.reg.mu.RLock()
	users := len(f.reg.byUser)
	f.reg.mu.RUnlock()
	if err := f.reg.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	want(f.user)
	f.reg.mu.RLock()
	left := len(f.reg.byUser)
	f.reg.mu.RUnlock()
	if users != 2 || left != 1 {
		t.Fatalf("%d users indexed before the last tracker of one went, %d after; want 2, 1", users, left)
	}
}
