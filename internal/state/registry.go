// Package state keeps the live picture of the fleet: every tracker and its
// last known source state. Ingest applies fixes here; the registry derives
// movement and connection statuses, publishes each change on the bus, runs
// the timers that age quiet devices to idle and offline, and writes changed
// states to the store in the background.
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/store"
)

// ErrUnknownDevice is returned by Apply for a device id no tracker has.
var ErrUnknownDevice = errors.New("state: unknown device")

// ErrBlocked is returned by Apply for a blocked tracker.
var ErrBlocked = errors.New("state: tracker blocked")

// ErrNotFound is returned for a tracker id that does not exist.
var ErrNotFound = errors.New("state: tracker not found")

// Options tune the registry. Zero values take the defaults noted.
type Options struct {
	// IdleAfter is how long after its last message an active device
	// becomes idle (default 2m).
	IdleAfter time.Duration
	// OfflineAfter is how long after its last message a device becomes
	// offline (default 10m).
	OfflineAfter time.Duration
	// ParkedAfter is how long a stopped device stays stopped before it is
	// parked (default 5m). A device reporting ignition off parks at once.
	ParkedAfter time.Duration
	// MovingSpeed is the speed in km/h from which a device is moving
	// (default 3).
	MovingSpeed float64
	// FlushEvery is how often changed states are written to the store
	// (default 1s).
	FlushEvery time.Duration
	// TickEvery is how often the status timers are checked (default 1s).
	TickEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.IdleAfter <= 0 {
		o.IdleAfter = 2 * time.Minute
	}
	if o.OfflineAfter <= 0 {
		o.OfflineAfter = 10 * time.Minute
	}
	if o.ParkedAfter <= 0 {
		o.ParkedAfter = 5 * time.Minute
	}
	if o.MovingSpeed <= 0 {
		o.MovingSpeed = 3
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = time.Second
	}
	if o.TickEvery <= 0 {
		o.TickEvery = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Registry is the live fleet. It is safe for concurrent use. Trackers and
// states it returns are shared snapshots: never modify them.
type Registry struct {
	st   store.Store
	bus  bus.Bus
	opts Options

	mu       sync.RWMutex
	trackers map[int64]*fleet.Tracker
	byDevice map[string]int64
	states   map[int64]*fleet.State
	dirty    map[int64]struct{}

	// pub orders each tracker's messages on the bus: it is held across
	// computing a change and publishing it, while mu is not.
	pub [64]sync.Mutex

	histMu sync.Mutex
	hist   map[int64]*history
}

func (r *Registry) pubLock(id int64) *sync.Mutex { return &r.pub[uint64(id)%uint64(len(r.pub))] }

// New returns an empty registry over st and b; call Load before use.
func New(st store.Store, b bus.Bus, opts Options) *Registry {
	opts.defaults()
	return &Registry{
		st: st, bus: b, opts: opts,
		trackers: make(map[int64]*fleet.Tracker),
		byDevice: make(map[string]int64),
		states:   make(map[int64]*fleet.State),
		dirty:    make(map[int64]struct{}),
		hist:     make(map[int64]*history),
	}
}

// Load reads every tracker and saved state from the store.
func (r *Registry) Load(ctx context.Context) error {
	ts, err := r.st.Trackers(ctx, 0)
	if err != nil {
		return fmt.Errorf("load trackers: %w", err)
	}
	ss, err := r.st.States(ctx)
	if err != nil {
		return fmt.Errorf("load states: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range ts {
		r.trackers[t.ID] = t
		if t.DeviceID != "" {
			r.byDevice[t.DeviceID] = t.ID
		}
	}
	for _, s := range ss {
		t, ok := r.trackers[s.TrackerID]
		if !ok {
			continue
		}
		s.SourceID = t.SourceID
		r.states[s.TrackerID] = s
	}
	for _, t := range ts {
		if _, ok := r.states[t.ID]; !ok {
			r.states[t.ID] = initialState(t)
		}
	}
	return nil
}

func initialState(t *fleet.Tracker) *fleet.State {
	return &fleet.State{
		TrackerID:        t.ID,
		SourceID:         t.SourceID,
		ConnectionStatus: fleet.JustRegistered,
		MovementStatus:   fleet.Parked,
	}
}

// Tracker returns the tracker with id, unless it does not exist or was
// deleted.
func (r *Registry) Tracker(id int64) (*fleet.Tracker, bool) {
	r.mu.RLock()
	t, ok := r.trackers[id]
	r.mu.RUnlock()
	return t, ok
}

// TrackerByDevice returns the tracker a device id belongs to.
func (r *Registry) TrackerByDevice(deviceID string) (*fleet.Tracker, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	id, ok := r.byDevice[deviceID]
	if !ok {
		return nil, false
	}
	return r.trackers[id], true
}

// Trackers lists a user's trackers (every tracker for userID 0), ordered
// by id.
func (r *Registry) Trackers(userID int64) []*fleet.Tracker {
	r.mu.RLock()
	out := make([]*fleet.Tracker, 0, len(r.trackers))
	for _, t := range r.trackers {
		if userID == 0 || t.UserID == userID {
			out = append(out, t)
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *fleet.Tracker) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// State returns a tracker's current state.
func (r *Registry) State(id int64) (*fleet.State, bool) {
	r.mu.RLock()
	s, ok := r.states[id]
	r.mu.RUnlock()
	return s, ok
}

// Snapshot returns tracker id and its current state under one lock.
func (r *Registry) Snapshot(id int64) (*fleet.Tracker, *fleet.State, bool) {
	r.mu.RLock()
	t, ok := r.trackers[id]
	s, sok := r.states[id]
	r.mu.RUnlock()
	return t, s, ok && sok
}

// CreateTracker registers a new tracker and announces it on the bus.
func (r *Registry) CreateTracker(ctx context.Context, t *fleet.Tracker) (*fleet.Tracker, error) {
	nt, err := r.st.CreateTracker(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("create tracker: %w", err)
	}
	st := initialState(nt)
	r.mu.Lock()
	r.trackers[nt.ID] = nt
	if nt.DeviceID != "" {
		r.byDevice[nt.DeviceID] = nt.ID
	}
	r.states[nt.ID] = st
	r.mu.Unlock()
	r.publish(ctx, &bus.Message{Kind: bus.KindTracker, UserID: nt.UserID, TrackerID: nt.ID, SourceID: nt.SourceID, Tracker: nt})
	return nt, nil
}

// SetBlocked blocks or unblocks a tracker. It publishes a lifecycle event;
// on unblock it also publishes the current state, which subscribers get at
// once.
func (r *Registry) SetBlocked(ctx context.Context, id int64, blocked bool) error {
	// Look the tracker up under its publish lock, so that a concurrent
	// Delete or SetBlocked is either fully before or fully after.
	pub := r.pubLock(id)
	pub.Lock()
	defer pub.Unlock()
	r.mu.RLock()
	t, ok := r.trackers[id]
	r.mu.RUnlock()
	if !ok {
		return ErrNotFound
	}
	if t.Blocked == blocked {
		return nil
	}
	if err := r.st.SetTrackerBlocked(ctx, id, blocked); err != nil {
		return fmt.Errorf("set blocked: %w", err)
	}
	nt := *t
	nt.Blocked = blocked
	r.mu.Lock()
	r.trackers[id] = &nt
	s := r.states[id]
	r.mu.Unlock()
	ev := fleet.LifecycleBlock
	if !blocked {
		ev = fleet.LifecycleUnblock
	}
	r.publish(ctx, &bus.Message{Kind: bus.KindTracker, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Tracker: &nt})
	r.publish(ctx, &bus.Message{Kind: bus.KindLifecycle, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Lifecycle: ev})
	if !blocked && s != nil {
		r.publish(ctx, &bus.Message{Kind: bus.KindState, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, State: s})
	}
	return nil
}

// Delete marks a tracker deleted (corrupted): it disappears from lists, its
// device id is freed and subscribers get a corrupt lifecycle event.
func (r *Registry) Delete(ctx context.Context, id int64) error {
	pub := r.pubLock(id)
	pub.Lock()
	defer pub.Unlock()
	r.mu.RLock()
	t, ok := r.trackers[id]
	r.mu.RUnlock()
	if !ok {
		return ErrNotFound
	}
	if err := r.st.DeleteTracker(ctx, id); err != nil {
		return fmt.Errorf("delete tracker: %w", err)
	}
	r.mu.Lock()
	delete(r.trackers, id)
	if r.byDevice[t.DeviceID] == id {
		delete(r.byDevice, t.DeviceID)
	}
	delete(r.states, id)
	delete(r.dirty, id)
	r.mu.Unlock()
	nt := *t
	nt.Deleted = true
	// Lifecycle first: subscribers must hear of the deletion before the
	// tracker leaves their indexes.
	r.publish(ctx, &bus.Message{Kind: bus.KindLifecycle, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Lifecycle: fleet.LifecycleCorrupt})
	r.publish(ctx, &bus.Message{Kind: bus.KindTracker, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Tracker: &nt})
	return nil
}

func (r *Registry) publish(ctx context.Context, m *bus.Message) {
	if err := r.bus.Publish(ctx, m); err != nil {
		r.opts.Logger.Warn("publish", "kind", m.Kind, "tracker", m.TrackerID, "err", err)
	}
}

// HandleBus keeps the registry in step with changes made on other nodes
// sharing the bus. Changes this node made are already applied and are
// recognised by identity or by timestamps, so applying them again is
// harmless.
func (r *Registry) HandleBus(m *bus.Message) {
	switch m.Kind {
	case bus.KindTracker:
		t := m.Tracker
		if t == nil {
			return
		}
		r.mu.Lock()
		if t.Deleted {
			if old, ok := r.trackers[t.ID]; ok && r.byDevice[old.DeviceID] == t.ID {
				delete(r.byDevice, old.DeviceID)
			}
			delete(r.trackers, t.ID)
			delete(r.states, t.ID)
		} else {
			r.trackers[t.ID] = t
			if t.DeviceID != "" {
				r.byDevice[t.DeviceID] = t.ID
			}
			if _, ok := r.states[t.ID]; !ok {
				r.states[t.ID] = initialState(t)
			}
		}
		r.mu.Unlock()
	case bus.KindState:
		s := m.State
		if s == nil {
			return
		}
		r.mu.Lock()
		if cur, ok := r.states[m.TrackerID]; ok && cur != s && !s.LastUpdate.Before(cur.LastUpdate) {
			if _, live := r.trackers[m.TrackerID]; live {
				r.states[m.TrackerID] = s
			}
		}
		r.mu.Unlock()
	}
}

// Count is the number of live trackers.
func (r *Registry) Count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.trackers)
}
