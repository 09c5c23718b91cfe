// Package state keeps the live picture of the fleet: every tracker and its
// last known source state. Ingest applies fixes here; the registry derives
// movement and connection statuses, publishes each change on the bus, runs
// the timers that age quiet devices to idle and offline, and hands every
// change it takes in, its own or another node's, to its listeners (the
// event hub) in the order of the log.
//
// On a single node (the in-process bus) the registry is the fleet's only
// picture and writes changed states to the store itself. In a cluster the
// log decides: a state is derived from the latest state the node knows and
// published as derived from it; when another node got there first the log
// refuses it (bus.ErrStale), and the registry takes the log's latest state
// and derives again. The node keeps the states of the users it follows
// (users with clients on it, bus.Bus.Follow) current; the others may be
// stale until the node follows them or ingests for them. The store then
// follows the log, written by the cluster's store writer.
package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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

// ErrUnavailable is returned by Apply when the change could not be stored
// in the log: the device must be told to send it again.
var ErrUnavailable = errors.New("state: change not stored, try again")

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
	// FlushEvery is how often changed states are written to the store on a
	// single node (default 1s).
	FlushEvery time.Duration
	// TickEvery is how often the status timers are checked (default 1s).
	TickEvery time.Duration
	// Linger is how long a user stays followed after the last read that
	// needed current states (Touch), in a cluster (default 2m).
	Linger time.Duration
	// ResyncEvery is how often, in a cluster, the trackers are read again
	// from the store, in case a tracker change was missed on the bus
	// (default 30s).
	ResyncEvery time.Duration
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
	if o.Linger <= 0 {
		o.Linger = 2 * time.Minute
	}
	if o.ResyncEvery <= 0 {
		o.ResyncEvery = 30 * time.Second
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
	st     store.Store
	bus    bus.Bus
	opts   Options
	shared bool // the bus is shared with other nodes
	unsub  func()

	mu       sync.RWMutex
	trackers map[int64]*fleet.Tracker
	byUser   map[int64]map[int64]*fleet.Tracker // the same trackers by user, then id
	byDevice map[string]int64
	states   map[int64]*fleet.State
	dirty    map[int64]struct{} // single node: states to write to the store
	written  map[int64]struct{} // cluster: trackers whose latest state this node published
	followed map[int64]int      // cluster: users followed, with the number of holders
	touched  map[int64]*touch   // cluster: users followed for reads

	// pub orders each tracker's writers: it is held across deriving a
	// change and publishing it.
	pub [64]sync.Mutex
	// fwd orders each tracker's changes to the listeners: it is held
	// across taking a change in and handing it on.
	fwd [64]sync.Mutex

	listeners atomic.Pointer[[]*listener]
	lmu       sync.Mutex

	histMu sync.Mutex
	hist   map[int64]*history
}

type listener struct{ fn func(*bus.Message) }

// touch is a follow held for reads until it lingers out.
type touch struct {
	release func()
	until   time.Time
}

func (r *Registry) pubLock(id int64) *sync.Mutex { return &r.pub[uint64(id)%uint64(len(r.pub))] }
func (r *Registry) fwdLock(id int64) *sync.Mutex { return &r.fwd[uint64(id)%uint64(len(r.fwd))] }

// New returns an empty registry over st and b; call Load before use. The
// registry receives b's messages until Close.
func New(st store.Store, b bus.Bus, opts Options) *Registry {
	opts.defaults()
	sh, ok := b.(interface{ Shared() bool })
	r := &Registry{
		st: st, bus: b, opts: opts, shared: ok && sh.Shared(),
		trackers: make(map[int64]*fleet.Tracker),
		byUser:   make(map[int64]map[int64]*fleet.Tracker),
		byDevice: make(map[string]int64),
		states:   make(map[int64]*fleet.State),
		dirty:    make(map[int64]struct{}),
		written:  make(map[int64]struct{}),
		followed: make(map[int64]int),
		touched:  make(map[int64]*touch),
		hist:     make(map[int64]*history),
	}
	r.listeners.Store(&[]*listener{})
	r.unsub = b.Subscribe(r.HandleBus)
	return r
}

// Close stops taking messages from the bus and releases the follows held
// for reads.
func (r *Registry) Close() {
	r.unsub()
	r.mu.Lock()
	ts := r.touched
	r.touched = make(map[int64]*touch)
	r.mu.Unlock()
	for _, t := range ts {
		t.release()
	}
}

// Listen registers fn for every change the registry takes in, in the
// order of the log per tracker: states, lifecycle and logout messages and
// tracker changes, never Sync messages. fn runs on the publisher's or the
// bus's goroutine, under the tracker's ordering lock, and must not block.
func (r *Registry) Listen(fn func(*bus.Message)) (cancel func()) {
	l := &listener{fn: fn}
	r.lmu.Lock()
	old := *r.listeners.Load()
	next := append(append(make([]*listener, 0, len(old)+1), old...), l)
	r.listeners.Store(&next)
	r.lmu.Unlock()
	return func() {
		r.lmu.Lock()
		defer r.lmu.Unlock()
		cur := *r.listeners.Load()
		next := make([]*listener, 0, len(cur))
		for _, x := range cur {
			if x != l {
				next = append(next, x)
			}
		}
		r.listeners.Store(&next)
	}
}

func (r *Registry) notify(m *bus.Message) {
	for _, l := range *r.listeners.Load() {
		l.fn(m)
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
	var top uint64
	r.mu.Lock()
	for _, t := range ts {
		r.putTracker(t)
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
		top = max(top, s.Seq)
	}
	for _, t := range ts {
		if _, ok := r.states[t.ID]; !ok {
			r.states[t.ID] = initialState(t)
		}
	}
	r.mu.Unlock()
	if a, ok := r.bus.(interface{ Advance(uint64) }); ok {
		// The single node's bus numbers on from the states it saved.
		a.Advance(top)
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
	all := r.trackers
	if userID != 0 {
		all = r.byUser[userID]
	}
	out := make([]*fleet.Tracker, 0, len(all))
	for _, t := range all {
		out = append(out, t)
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

// Follow keeps the states of the user's trackers current on this node
// until release is called: in a cluster it follows the user on the bus
// and returns once the node's picture is up to date. Every client session
// of the user holds one.
func (r *Registry) Follow(ctx context.Context, userID int64) (release func(), err error) {
	if !r.shared {
		return func() {}, nil
	}
	rel, err := r.bus.Follow(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("follow user %d: %w", userID, err)
	}
	r.mu.Lock()
	r.followed[userID]++
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			if r.followed[userID]--; r.followed[userID] <= 0 {
				delete(r.followed, userID)
			}
			r.mu.Unlock()
			rel()
		})
	}, nil
}

// Position is how far the log's changes about the user have reached this
// node (see bus.Bus.Position).
func (r *Registry) Position(userID int64) uint64 { return r.bus.Position(userID) }

// Replay reads the user's changes from the log again (see bus.Bus.Replay).
func (r *Registry) Replay(ctx context.Context, userID int64, from uint64, fn func(*bus.Message) bool) (uint64, error) {
	return r.bus.Replay(ctx, userID, from, fn)
}

// Touch makes the states of the user's trackers current for a read (a
// REST call) and keeps them so for Options.Linger after the last touch.
// On a single node it does nothing.
func (r *Registry) Touch(ctx context.Context, userID int64) error {
	if !r.shared {
		return nil
	}
	until := r.opts.Now().Add(r.opts.Linger)
	r.mu.Lock()
	if t, ok := r.touched[userID]; ok {
		t.until = until
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	rel, err := r.Follow(ctx, userID)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if t, ok := r.touched[userID]; ok {
		// A concurrent read got there first.
		t.until = until
		r.mu.Unlock()
		rel()
		return nil
	}
	r.touched[userID] = &touch{release: rel, until: until}
	r.mu.Unlock()
	return nil
}

// untouch releases the follows whose reads lingered out.
func (r *Registry) untouch(now time.Time) {
	var done []func()
	r.mu.Lock()
	for uid, t := range r.touched {
		if now.After(t.until) {
			done = append(done, t.release)
			delete(r.touched, uid)
		}
	}
	r.mu.Unlock()
	for _, rel := range done {
		rel()
	}
}

// CreateTracker registers a new tracker and announces it on the bus.
func (r *Registry) CreateTracker(ctx context.Context, t *fleet.Tracker) (*fleet.Tracker, error) {
	nt, err := r.st.CreateTracker(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("create tracker: %w", err)
	}
	st := initialState(nt)
	r.mu.Lock()
	r.putTracker(nt)
	if nt.DeviceID != "" {
		r.byDevice[nt.DeviceID] = nt.ID
	}
	r.states[nt.ID] = st
	r.mu.Unlock()
	r.announce(ctx, &bus.Message{Kind: bus.KindTracker, UserID: nt.UserID, TrackerID: nt.ID, SourceID: nt.SourceID, Tracker: nt})
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
	r.putTracker(&nt)
	r.mu.Unlock()
	ev := fleet.LifecycleBlock
	if !blocked {
		ev = fleet.LifecycleUnblock
	}
	r.announce(ctx, &bus.Message{Kind: bus.KindTracker, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Tracker: &nt})
	r.announce(ctx, &bus.Message{Kind: bus.KindLifecycle, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Lifecycle: ev})
	if !blocked {
		// The state as it was when the tracker was blocked, again, so that
		// subscribers get it at once.
		_, err := r.change(ctx, id, func(_ *fleet.Tracker, prev *fleet.State) (*fleet.State, *fleet.Record, error) {
			s := *prev
			return &s, nil, nil
		})
		if err != nil {
			r.opts.Logger.Warn("publish state on unblock", "tracker", id, "err", err)
		}
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
	nt := *t
	nt.Deleted = true
	// Lifecycle first: subscribers must hear of the deletion before the
	// tracker leaves their indexes.
	r.announce(ctx, &bus.Message{Kind: bus.KindLifecycle, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Lifecycle: fleet.LifecycleCorrupt})
	r.forget(&nt)
	r.announce(ctx, &bus.Message{Kind: bus.KindTracker, UserID: nt.UserID, TrackerID: id, SourceID: nt.SourceID, Tracker: &nt})
	return nil
}

// putTracker adds or replaces t in the indexes by id and by user. Callers
// hold r.mu.
func (r *Registry) putTracker(t *fleet.Tracker) {
	r.dropTracker(t.ID)
	r.trackers[t.ID] = t
	u := r.byUser[t.UserID]
	if u == nil {
		u = make(map[int64]*fleet.Tracker)
		r.byUser[t.UserID] = u
	}
	u[t.ID] = t
}

// dropTracker removes the tracker from the indexes by id and by user.
// Callers hold r.mu.
func (r *Registry) dropTracker(id int64) {
	old, ok := r.trackers[id]
	if !ok {
		return
	}
	delete(r.trackers, id)
	if u := r.byUser[old.UserID]; u != nil {
		delete(u, id)
		if len(u) == 0 {
			delete(r.byUser, old.UserID)
		}
	}
}

// forget drops a deleted tracker.
func (r *Registry) forget(t *fleet.Tracker) {
	r.mu.Lock()
	if old, ok := r.trackers[t.ID]; ok && r.byDevice[old.DeviceID] == t.ID {
		delete(r.byDevice, old.DeviceID)
	}
	r.dropTracker(t.ID)
	delete(r.states, t.ID)
	delete(r.dirty, t.ID)
	delete(r.written, t.ID)
	r.mu.Unlock()
}

// announce publishes a change already made in the store. If the bus cannot
// take it, the other nodes learn of it at their next resync from the
// store; this node has applied it already.
func (r *Registry) announce(ctx context.Context, m *bus.Message) {
	if err := r.bus.Publish(ctx, m); err != nil {
		r.opts.Logger.Warn("publish", "kind", m.Kind, "tracker", m.TrackerID, "err", err)
	}
}

// HandleBus takes in one message of the bus: a change this node published
// or one from another node. A state is taken only when it is newer than
// the one the registry holds; the listeners hear of every change taken,
// except Sync messages.
func (r *Registry) HandleBus(m *bus.Message) {
	switch m.Kind {
	case bus.KindTracker:
		r.takeTracker(m)
		if !m.Sync {
			r.notify(m)
		}
	case bus.KindState:
		if m.State == nil {
			return
		}
		fwd := r.fwdLock(m.TrackerID)
		fwd.Lock()
		defer fwd.Unlock()
		r.mu.Lock()
		cur, ok := r.states[m.TrackerID]
		t, live := r.trackers[m.TrackerID]
		if !ok || !live || m.Seq <= cur.Seq {
			r.mu.Unlock()
			return
		}
		r.states[m.TrackerID] = m.State
		switch {
		case !r.shared:
			r.dirty[m.TrackerID] = struct{}{}
		case m.Local:
			r.written[m.TrackerID] = struct{}{}
		default:
			delete(r.written, m.TrackerID)
		}
		r.mu.Unlock()
		if m.Record != nil && !m.Local {
			r.record(m.TrackerID, recorded{rec: m.Record, at: m.Record.MsgTime})
		}
		// A blocked tracker's states (its status timers) are kept but
		// never announced; unblocking announces the current one.
		if !m.Sync && !t.Blocked {
			r.notify(m)
		}
	default:
		if !m.Sync {
			fwd := r.fwdLock(m.TrackerID)
			fwd.Lock()
			r.notify(m)
			fwd.Unlock()
		}
	}
}

// takeTracker applies a tracker change made on another node (changes this
// node made are applied already and are recognised as equal).
func (r *Registry) takeTracker(m *bus.Message) {
	t := m.Tracker
	if t == nil || m.Local {
		return
	}
	if t.Deleted {
		r.forget(t)
		return
	}
	r.mu.Lock()
	if old, ok := r.trackers[t.ID]; ok && old.DeviceID != t.DeviceID && r.byDevice[old.DeviceID] == t.ID {
		delete(r.byDevice, old.DeviceID)
	}
	r.putTracker(t)
	if t.DeviceID != "" {
		r.byDevice[t.DeviceID] = t.ID
	}
	if _, ok := r.states[t.ID]; !ok {
		r.states[t.ID] = initialState(t)
	}
	r.mu.Unlock()
}

// resync reads the trackers from the store again and applies what the bus
// did not bring (a cluster's safety net for tracker changes missed while
// the bus was down).
func (r *Registry) resync(ctx context.Context) error {
	ts, err := r.st.Trackers(ctx, 0)
	if err != nil {
		return fmt.Errorf("resync trackers: %w", err)
	}
	seen := make(map[int64]struct{}, len(ts))
	for _, t := range ts {
		seen[t.ID] = struct{}{}
		cur, ok := r.Tracker(t.ID)
		if ok && *cur == *t {
			continue
		}
		r.takeTracker(&bus.Message{Kind: bus.KindTracker, TrackerID: t.ID, UserID: t.UserID, Tracker: t})
	}
	for _, t := range r.Trackers(0) {
		if _, ok := seen[t.ID]; !ok {
			d := *t
			d.Deleted = true
			r.forget(&d)
		}
	}
	return nil
}

// Count is the number of live trackers.
func (r *Registry) Count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.trackers)
}
