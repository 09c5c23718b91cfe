package state

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
)

// Fix is one message from a device, whatever protocol carried it. Pointer
// fields are nil when the device did not report them.
type Fix struct {
	// DeviceID identifies the device (OsmAnd "id", MQTT client, IMEI).
	DeviceID string
	// Time is when the device took the fix; zero means ReceivedAt.
	Time time.Time
	// ReceivedAt is when the server received the message; zero means now.
	ReceivedAt time.Time
	// Location is the position, nil for a message without one.
	Location *fleet.Location
	// Speed in km/h, Heading in degrees, Alt in metres, Accuracy in metres.
	Speed, Heading, Alt, Accuracy *float64
	// Battery level in percent.
	Battery *float64
	// Satellites in view.
	Satellites *int
	// LBS is set when Location was found from cell towers (GSM LBS)
	// rather than satellites.
	LBS bool
	// Ignition state.
	Ignition *bool
	// Inputs and Outputs are discrete I/O states, nil when not reported.
	Inputs, Outputs []bool
	// Attributes are model-specific values kept in the state's
	// "additional" map, as strings.
	Attributes map[string]string
}

// Apply updates the state of the tracker the fix's device belongs to and
// publishes the new state. It returns the new state once the change is
// stored in the log; ErrUnavailable means it is not, and the device must
// send the fix again. f is kept (for the stream analyzer's history): the
// caller must not change it afterwards.
func (r *Registry) Apply(ctx context.Context, f *Fix) (*fleet.State, error) {
	now := r.opts.Now()
	if f.ReceivedAt.IsZero() {
		f.ReceivedAt = now
	}
	at := f.Time
	if at.IsZero() || at.After(f.ReceivedAt.Add(time.Minute)) {
		at = f.ReceivedAt
	}
	at = at.Truncate(time.Second)

	r.mu.RLock()
	id, ok := r.byDevice[f.DeviceID]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, f.DeviceID)
	}
	// The tracker's publish lock keeps its states in order on the bus
	// without holding the registry lock while receivers run.
	pub := r.pubLock(id)
	pub.Lock()
	defer pub.Unlock()
	var rec *fleet.Record
	if r.shared {
		// Other nodes' stream analyzers, and the history kept from the
		// log, need the message itself, at the time the device took it.
		taken := f.Time
		if taken.IsZero() || taken.After(f.ReceivedAt.Add(time.Minute)) {
			taken = f.ReceivedAt
		}
		m := messageOf(f, taken, f.ReceivedAt)
		rec = &m
	}
	s, err := r.change(ctx, id, func(t *fleet.Tracker, prev *fleet.State) (*fleet.State, *fleet.Record, error) {
		if t.Blocked {
			return nil, nil, ErrBlocked
		}
		return r.next(prev, t, f, at), rec, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, f.DeviceID)
	}
	if err != nil {
		return nil, err
	}
	r.record(id, recorded{fix: f, at: at})
	return s, nil
}

// deriveFunc derives a tracker's next state from prev, with the device
// message behind it (or nil). A nil state means there is nothing to change.
type deriveFunc func(t *fleet.Tracker, prev *fleet.State) (*fleet.State, *fleet.Record, error)

// change derives tracker id's next state and publishes it as derived from
// the state it started from. When the log holds a newer state (another
// node published first), the registry takes that one in and derives again.
// Callers hold the tracker's publish lock.
func (r *Registry) change(ctx context.Context, id int64, derive deriveFunc) (*fleet.State, error) {
	const attempts = 4
	var empty bool // the log holds no state of the tracker
	for attempt := 1; ; attempt++ {
		r.mu.RLock()
		t, ok := r.trackers[id]
		prev := r.states[id]
		r.mu.RUnlock()
		if !ok || prev == nil {
			return nil, ErrNotFound
		}
		s, rec, err := derive(t, prev)
		if err != nil || s == nil {
			return nil, err
		}
		m := &bus.Message{Kind: bus.KindState, UserID: t.UserID, TrackerID: id, SourceID: t.SourceID, State: s, Record: rec, Prev: prev.Seq}
		if empty {
			m.Prev = 0
		}
		err = r.bus.Publish(ctx, m)
		var stale *bus.StaleError
		switch {
		case err == nil:
			return s, nil
		case errors.As(err, &stale) && attempt < attempts:
			empty = stale.Latest == nil
			if !empty {
				r.adopt(stale.Latest)
			}
		case errors.As(err, &stale):
			return nil, fmt.Errorf("%w: tracker %d changed on other nodes %d times while deriving", ErrUnavailable, id, attempts)
		default:
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
}

// adopt takes the log's latest state of a tracker in place of the one the
// registry holds, which the log says is not the latest. It is a change
// from another node this node had not heard of yet (its feed is behind,
// or it does not follow the user): the listeners hear of it here, in the
// order of the log, and the feed's copy later is dropped as old.
func (r *Registry) adopt(m *bus.Message) {
	if m.State == nil {
		return
	}
	fwd := r.fwdLock(m.TrackerID)
	fwd.Lock()
	defer fwd.Unlock()
	r.mu.Lock()
	cur, ok := r.states[m.TrackerID]
	t, live := r.trackers[m.TrackerID]
	took := ok && live && cur.Seq != m.Seq
	if took {
		s := *m.State
		s.TrackerID = m.TrackerID
		s.Seq = m.Seq
		r.states[m.TrackerID] = &s
		delete(r.written, m.TrackerID)
		m = &bus.Message{Kind: bus.KindState, UserID: m.UserID, TrackerID: m.TrackerID, SourceID: m.SourceID,
			State: &s, Record: m.Record, Seq: m.Seq, Prev: m.Prev, Origin: m.Origin}
	}
	r.mu.Unlock()
	if !took {
		return
	}
	if m.Record != nil {
		r.record(m.TrackerID, recorded{rec: m.Record, at: m.Record.MsgTime})
	}
	if !t.Blocked {
		r.notify(m)
	}
}

// next derives the state after f from prev. prev is never modified.
func (r *Registry) next(prev *fleet.State, t *fleet.Tracker, f *Fix, at time.Time) *fleet.State {
	var s fleet.State
	if prev != nil {
		s = *prev // shallow: slices and maps below are replaced, never written
	}
	s.TrackerID, s.SourceID = t.ID, t.SourceID
	s.IngestedAt = f.ReceivedAt
	s.LastUpdate = at
	s.ConnectionStatus = fleet.Active

	speed := -1.0
	if f.Location != nil {
		loc := *f.Location
		s.GPS.Location = &loc
		s.GPS.Updated = at
		s.ActualTrackUpdate = at
		if f.Speed != nil {
			speed = math.Max(0, *f.Speed)
			s.GPS.Speed = int(math.Round(speed))
		} else {
			s.GPS.Speed = 0
			speed = 0
		}
		if f.Heading != nil {
			h := int(math.Round(*f.Heading)) % 360
			if h < 0 {
				h += 360
			}
			s.GPS.Heading = h
		}
		if f.Alt != nil {
			s.GPS.Alt = int(math.Round(*f.Alt))
		}
		s.GPS.GSMLBS = f.LBS
		if f.Accuracy != nil {
			p := int(math.Round(*f.Accuracy))
			s.GPS.Precision = &p
		}
		if f.Satellites != nil {
			lvl := min(100, max(0, *f.Satellites*100/12))
			s.GPS.SignalLevel = &lvl
		}
	}
	if f.Battery != nil {
		b := int(math.Round(math.Min(100, math.Max(0, *f.Battery))))
		s.BatteryLevel = &b
		s.BatteryUpdate = at
	}
	if f.Ignition != nil {
		if s.Ignition == nil || *s.Ignition != *f.Ignition {
			s.IgnitionUpdate = at
		}
		v := *f.Ignition
		s.Ignition = &v
	}
	if f.Inputs != nil {
		s.Inputs = append([]bool(nil), f.Inputs...)
		s.InputsUpdate = at
	}
	if f.Outputs != nil {
		s.Outputs = append([]bool(nil), f.Outputs...)
		s.OutputsUpdate = at
	}
	if len(f.Attributes) > 0 {
		add := make(map[string]fleet.Additional, len(s.Additional)+len(f.Attributes))
		for k, v := range s.Additional {
			add[k] = v
		}
		for k, v := range f.Attributes {
			add[k] = fleet.Additional{Value: v, Updated: at}
		}
		s.Additional = add
		s.ReadingsUpdate = at
	}

	movement := s.MovementStatus
	switch {
	case speed >= r.opts.MovingSpeed:
		movement = fleet.Moving
	case speed >= 0 && s.Ignition != nil && !*s.Ignition:
		movement = fleet.Parked
	case speed >= 0 && movement == fleet.Moving:
		movement = fleet.Stopped
	case movement == "":
		movement = fleet.Parked
	}
	if movement != s.MovementStatus || s.MovementStatusUpdate.IsZero() {
		s.MovementStatus = movement
		s.MovementStatusUpdate = at
	}
	return &s
}

// Run ages quiet devices (active → idle → offline, stopped → parked),
// publishing each change, and, on a single node, writes changed states to
// the store, until ctx is cancelled; then it writes what is left and
// returns. In a cluster it also releases lingering follows and reads the
// trackers from the store again every Options.ResyncEvery.
func (r *Registry) Run(ctx context.Context) error {
	tick := time.NewTicker(r.opts.TickEvery)
	defer tick.Stop()
	flush := time.NewTicker(r.opts.FlushEvery)
	defer flush.Stop()
	resync := time.NewTicker(r.opts.ResyncEvery)
	defer resync.Stop()
	var nextFlush time.Time
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return r.Flush(fctx)
		case <-tick.C:
			r.age(ctx)
			r.untouch(r.opts.Now())
		case <-flush.C:
			// Writing states takes at most a fifth of the time: after a
			// flush that took d, the next waits 4·d, so a fleet changing
			// faster than the store takes its rows has each tracker's
			// latest state written less often rather than the ingest
			// starved of CPU by the writes.
			if time.Now().Before(nextFlush) {
				continue
			}
			start := time.Now()
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("flush states", "err", err)
			}
			nextFlush = start.Add(5 * time.Since(start))
		case <-resync.C:
			if !r.shared {
				continue
			}
			if err := r.resync(ctx); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("resync trackers", "err", err)
			}
		}
	}
}

// age moves states whose devices went quiet to their next status. In a
// cluster a node ages only the trackers it knows to be current: those of
// followed users and those whose latest state it published; the others
// are aged by whichever node follows them.
func (r *Registry) age(ctx context.Context) {
	now := r.opts.Now()
	r.mu.RLock()
	var due []int64
	for id, s := range r.states {
		if r.shared {
			t := r.trackers[id]
			_, wrote := r.written[id]
			if t == nil || (!wrote && r.followed[t.UserID] == 0) {
				continue
			}
		}
		if _, _, changed := r.aged(s, now); changed {
			due = append(due, id)
		}
	}
	r.mu.RUnlock()
	for _, id := range due {
		pub := r.pubLock(id)
		pub.Lock()
		_, err := r.change(ctx, id, func(t *fleet.Tracker, s *fleet.State) (*fleet.State, *fleet.Record, error) {
			conn, move, changed := r.aged(s, now)
			if !changed {
				return nil, nil, nil
			}
			ns := *s
			if move != s.MovementStatus {
				ns.MovementStatus, ns.MovementStatusUpdate = move, now.Truncate(time.Second)
			}
			ns.ConnectionStatus = conn
			ns.IngestedAt = now
			return &ns, nil, nil
		})
		pub.Unlock()
		if err != nil && !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
			r.opts.Logger.Warn("publish aged state", "tracker", id, "err", err)
		}
	}
}

// aged returns the statuses s ages into at now.
func (r *Registry) aged(s *fleet.State, now time.Time) (conn, move string, changed bool) {
	conn, move = s.ConnectionStatus, s.MovementStatus
	if s.LastUpdate.IsZero() {
		return conn, move, false
	}
	quiet := now.Sub(s.LastUpdate)
	switch {
	case quiet >= r.opts.OfflineAfter:
		conn = fleet.Offline
	case quiet >= r.opts.IdleAfter:
		conn = fleet.Idle
	}
	if move == fleet.Moving && quiet >= r.opts.IdleAfter {
		move = fleet.Stopped
	} else if move == fleet.Stopped && now.Sub(s.MovementStatusUpdate) >= r.opts.ParkedAfter {
		move = fleet.Parked
	}
	return conn, move, conn != s.ConnectionStatus || move != s.MovementStatus
}

// Flush writes every state changed since the last flush. In a cluster it
// has nothing to do: the store follows the log.
func (r *Registry) Flush(ctx context.Context) error {
	r.mu.Lock()
	if len(r.dirty) == 0 {
		r.mu.Unlock()
		return nil
	}
	batch := make([]*fleet.State, 0, len(r.dirty))
	for id := range r.dirty {
		if s, ok := r.states[id]; ok {
			batch = append(batch, s)
		}
	}
	clear(r.dirty)
	r.mu.Unlock()
	if err := r.st.SaveStates(ctx, batch); err != nil {
		r.mu.Lock()
		for _, s := range batch {
			r.dirty[s.TrackerID] = struct{}{}
		}
		r.mu.Unlock()
		return fmt.Errorf("save states: %w", err)
	}
	return nil
}
