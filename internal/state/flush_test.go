package state

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// slowStates is the real store with state writes that take at least
// delay each, as SQLite's do when a fleet changes faster than it takes
// the rows.
type slowStates struct {
	store.Store
	delay time.Duration
	saves atomic.Int32
}

func (s *slowStates) SaveStates(ctx context.Context, states []*fleet.State) error {
	s.saves.Add(1)
	time.Sleep(s.delay)
	return s.Store.SaveStates(ctx, states)
}

// TestFlushGivesWayToSlowWrites: with state writes that take 100 ms and a
// flush due every 10 ms while the fleet keeps changing, Run writes about
// once per 500 ms (four times the write's time between flushes), not
// back to back; and what changed last is on disk once Run returns.
func TestFlushGivesWayToSlowWrites(t *testing.T) {
	f := newFixture(t)
	slow := &slowStates{Store: f.st, delay: 100 * time.Millisecond}
	opts := f.opts
	opts.FlushEvery = 10 * time.Millisecond
	reg := New(slow, bus.NewMemory(), opts)
	ctx := context.Background()
	if err := reg.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateTracker(ctx, &fleet.Tracker{Label: "d", UserID: f.user, DeviceID: "dev-slow", Model: "test"}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- reg.Run(runCtx) }()
	const span = 1500 * time.Millisecond
	var last float64
	for start := time.Now(); time.Since(start) < span; time.Sleep(5 * time.Millisecond) {
		last += 1e-4
		if _, err := reg.Apply(ctx, fix("dev-slow", 52+last, 13, 30)); err != nil {
			t.Fatal(err)
		}
	}
	saves := slow.saves.Load()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Back to back, 1.5 s of 100 ms writes would be 15; paced, at most
	// 1 + 1.5 s / 500 ms.
	if saves < 1 || saves > 4 {
		t.Fatalf("%d state writes in %v with writes of %v, want 1 to 4", saves, span, slow.delay)
	}
	states, err := f.st.States(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.GPS.Location != nil && s.GPS.Location.Lat != 52+last {
			t.Fatalf("state on disk after Run at lat %v, want the last one, %v", s.GPS.Location.Lat, 52+last)
		}
	}
	t.Logf("%d state writes in %v", saves, span)
}
