package state

import (
	"context"
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
	// Ignition state.
	Ignition *bool
	// Inputs and Outputs are discrete I/O states, nil when not reported.
	Inputs, Outputs []bool
	// Attributes are model-specific values kept in the state's
	// "additional" map, as strings.
	Attributes map[string]string
}

// Apply updates the state of the tracker the fix's device belongs to and
// publishes the new state. It returns the new state. f is kept (for the
// stream analyzer's history): the caller must not change it afterwards.
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
	r.mu.Lock()
	t, ok := r.trackers[id]
	if !ok {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, f.DeviceID)
	}
	if t.Blocked {
		r.mu.Unlock()
		return nil, ErrBlocked
	}
	s := r.next(r.states[id], t, f, at)
	r.states[id] = s
	r.dirty[id] = struct{}{}
	r.mu.Unlock()
	r.record(id, f, at)
	r.publish(ctx, &bus.Message{Kind: bus.KindState, UserID: t.UserID, TrackerID: id, SourceID: t.SourceID, State: s})
	return s, nil
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
// publishing each change, and writes changed states to the store, until
// ctx is cancelled; then it writes what is left and returns.
func (r *Registry) Run(ctx context.Context) error {
	tick := time.NewTicker(r.opts.TickEvery)
	defer tick.Stop()
	flush := time.NewTicker(r.opts.FlushEvery)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return r.Flush(fctx)
		case <-tick.C:
			r.age(ctx)
		case <-flush.C:
			if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("flush states", "err", err)
			}
		}
	}
}

// age moves states whose devices went quiet to their next status.
func (r *Registry) age(ctx context.Context) {
	now := r.opts.Now()
	r.mu.RLock()
	var due []int64
	for id, s := range r.states {
		if _, _, changed := r.aged(s, now); changed {
			due = append(due, id)
		}
	}
	r.mu.RUnlock()
	for _, id := range due {
		pub := r.pubLock(id)
		pub.Lock()
		r.mu.Lock()
		s, ok := r.states[id]
		t := r.trackers[id]
		var ns fleet.State
		var changed bool
		if ok && t != nil {
			var conn, move string
			conn, move, changed = r.aged(s, now)
			if changed {
				ns = *s
				if move != s.MovementStatus {
					ns.MovementStatus, ns.MovementStatusUpdate = move, now.Truncate(time.Second)
				}
				ns.ConnectionStatus = conn
				ns.IngestedAt = now
				r.states[id] = &ns
				r.dirty[id] = struct{}{}
			}
		}
		r.mu.Unlock()
		if changed && !t.Blocked {
			r.publish(ctx, &bus.Message{Kind: bus.KindState, UserID: t.UserID, TrackerID: id, SourceID: t.SourceID, State: &ns})
		}
		pub.Unlock()
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

// Flush writes every state changed since the last flush.
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
