// Package history keeps where trackers have been: the Recorder writes
// every accepted fix with a location to the store's position history,
// and Split cuts a tracker's points into tracks (trips) and parkings for
// the track API.
//
// # The guarantee
//
// The Recorder wraps the live state. A fix is applied to the state at
// once (events go out without waiting), then queued for the history
// writer, which writes whatever is queued in one transaction (group
// commit). Apply and ApplyAll return only after that transaction
// committed, and an ingest adapter acknowledges a fix to its device only
// after they returned: a fix a device was told was taken is in the
// database. If the write fails, Apply fails, the device is not
// acknowledged and sends the fix again. (Durable means committed: SQLite
// runs with synchronous=NORMAL in WAL mode, so a power cut, not a crash,
// can lose its last commits; PostgreSQL with its default
// synchronous_commit loses none.)
//
// Fixes recorded without waiting (RecordAsync, the demo's simulator) are
// dropped, and counted, when the writer is too far behind.
package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/state"
	"github.com/fleetwire/fleetwire/internal/store"
)

// ErrClosed is returned for fixes arriving after the recorder stopped.
var ErrClosed = errors.New("history: recorder stopped")

// Options tune a Recorder. Zero values take the defaults noted.
type Options struct {
	// Retention is how long points are kept; 0 keeps them forever.
	Retention time.Duration
	// MaxBatch bounds the points of one write (default 5,000).
	MaxBatch int
	// MaxQueue bounds the fixes waiting for the writer (default 50,000);
	// callers that wait block when it is full.
	MaxQueue int
	// CompactEvery is how often closed hours are packed (default 10m).
	CompactEvery time.Duration
	// BufferedAfter marks a fix that reached the server this long after
	// it was taken as buffered by the device (default 5m).
	BufferedAfter time.Duration
	// Logger receives write failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 5000
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 50000
	}
	if o.CompactEvery <= 0 {
		o.CompactEvery = 10 * time.Minute
	}
	if o.BufferedAfter <= 0 {
		o.BufferedAfter = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

var (
	mWritten = metrics.Default.NewCounter("fleetwire_history_points_total", "Track points written to the position history.", "")
	mFailed  = metrics.Default.NewCounter("fleetwire_history_write_errors_total", "Failed writes of track points (the devices were not acknowledged).", "")
	mDropped = metrics.Default.NewCounter("fleetwire_history_dropped_total", "Track points recorded without waiting and dropped because the writer was behind.", "")
	mBatch   = metrics.Default.NewHistogram("fleetwire_history_write_seconds", "Time to write one batch of track points.", "", metrics.LatencyBuckets)
)

// Recorder is the live state with a position history: it is a
// *state.Registry whose Apply also keeps the fix. It is safe for
// concurrent use.
type Recorder struct {
	*state.Registry
	st    store.History
	opts  Options
	queue chan *pending
	done  chan struct{}
}

// pending is one caller's points, waiting for their write.
type pending struct {
	points []store.Point
	result chan error // nil for fixes nobody waits for
}

// New returns a Recorder over reg writing to st; start it with Run.
func New(reg *state.Registry, st store.History, opts Options) *Recorder {
	opts.defaults()
	return &Recorder{Registry: reg, st: st, opts: opts, queue: make(chan *pending, opts.MaxQueue), done: make(chan struct{})}
}

// PointOf is the history point of a state change from the log (a cluster's
// store writer keeps the history from the log): the change of a device
// message with a location, at the time the device took it; false for
// changes without a position (readings, status timers).
func (r *Recorder) PointOf(m *bus.Message) (store.Point, bool) {
	if m.Kind != bus.KindState || m.State == nil || m.Record == nil || m.State.GPS.Location == nil {
		return store.Point{}, false
	}
	has := false
	sats := 0
	for _, f := range m.Record.Fields {
		switch f.Name {
		case "latitude":
			has = true
		case "satellites":
			sats, _ = strconv.Atoi(string(f.Value))
		}
	}
	if !has {
		return store.Point{}, false
	}
	g := m.State.GPS
	p := store.Point{
		TrackerID: m.TrackerID, Time: m.Record.MsgTime.UTC(), Lat: g.Location.Lat, Lng: g.Location.Lng,
		Alt: g.Alt, Speed: g.Speed, Heading: g.Heading, Satellites: sats, GSMLBS: g.GSMLBS,
		Buffered: m.Record.SrvTime.Sub(m.Record.MsgTime) > r.opts.BufferedAfter,
	}
	if g.Precision != nil {
		p.Precision = *g.Precision
	}
	return p, true
}

// Retention is how long points are kept (0: forever).
func (r *Recorder) Retention() time.Duration { return r.opts.Retention }

// Points reads a tracker's points; see store.History.
func (r *Recorder) Points(ctx context.Context, trackerID int64, from, to time.Time, limit int) ([]store.Point, error) {
	return r.st.Points(ctx, trackerID, from, to, limit)
}

// Apply applies f to the live state and, when it has a location, returns
// once it is written to the history.
func (r *Recorder) Apply(ctx context.Context, f *state.Fix) (*fleet.State, error) {
	s, err := r.Registry.Apply(ctx, f)
	if err != nil {
		return nil, err
	}
	if p, ok := r.point(s.TrackerID, f); ok {
		if err := r.wait(ctx, []store.Point{p}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ApplyAll applies fixes in order, stopping at the first the state
// refuses, and returns how many it applied once their points are
// written. When the write fails none counts as taken.
func (r *Recorder) ApplyAll(ctx context.Context, fixes []*state.Fix) (int, error) {
	points := make([]store.Point, 0, len(fixes))
	var applyErr error
	n := 0
	for _, f := range fixes {
		s, err := r.Registry.Apply(ctx, f)
		if err != nil {
			applyErr = err
			break
		}
		n++
		if p, ok := r.point(s.TrackerID, f); ok {
			points = append(points, p)
		}
	}
	if len(points) > 0 {
		if err := r.wait(ctx, points); err != nil {
			return 0, err
		}
	}
	return n, applyErr
}

// ApplyAsync applies f and queues its point without waiting for the
// write; the point is dropped (and counted) when the queue is full.
func (r *Recorder) ApplyAsync(ctx context.Context, f *state.Fix) (*fleet.State, error) {
	s, err := r.Registry.Apply(ctx, f)
	if err != nil {
		return nil, err
	}
	if p, ok := r.point(s.TrackerID, f); ok {
		select {
		case r.queue <- &pending{points: []store.Point{p}}:
		default:
			mDropped.Inc()
		}
	}
	return s, nil
}

// Async is the recorder as an applier that does not wait for writes.
func (r *Recorder) Async() AsyncApplier { return AsyncApplier{r} }

// AsyncApplier applies through ApplyAsync.
type AsyncApplier struct{ r *Recorder }

// Apply is Recorder.ApplyAsync.
func (a AsyncApplier) Apply(ctx context.Context, f *state.Fix) (*fleet.State, error) {
	return a.r.ApplyAsync(ctx, f)
}

// point is the track point of an applied fix: its time as the state took
// it (the receive time for a fix without one or from the future), kept
// to the millisecond.
func (r *Recorder) point(trackerID int64, f *state.Fix) (store.Point, bool) {
	if f.Location == nil {
		return store.Point{}, false
	}
	at := f.Time
	if at.IsZero() || at.After(f.ReceivedAt.Add(time.Minute)) {
		at = f.ReceivedAt
	}
	p := store.Point{
		TrackerID: trackerID, Time: at.UTC(), Lat: f.Location.Lat, Lng: f.Location.Lng,
		Buffered: f.ReceivedAt.Sub(at) > r.opts.BufferedAfter,
	}
	if f.Alt != nil {
		p.Alt = round(*f.Alt)
	}
	if f.Speed != nil {
		p.Speed = round(*f.Speed)
	}
	if f.Heading != nil {
		p.Heading = round(*f.Heading) % 360
		if p.Heading < 0 {
			p.Heading += 360
		}
	}
	if f.Satellites != nil {
		p.Satellites = *f.Satellites
	}
	if f.Accuracy != nil {
		p.Precision = round(*f.Accuracy)
	}
	return p, true
}

func round(v float64) int {
	if v < 0 {
		return int(v - 0.5)
	}
	return int(v + 0.5)
}

// wait queues points and waits for their write.
func (r *Recorder) wait(ctx context.Context, points []store.Point) error {
	p := &pending{points: points, result: make(chan error, 1)}
	select {
	case r.queue <- p:
	case <-r.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("history: queue: %w", ctx.Err())
	}
	select {
	case err := <-p.result:
		return err
	case <-r.done:
		// Stopping: the writer drains the queue once more.
		select {
		case err := <-p.result:
			return err
		case <-time.After(10 * time.Second):
			return ErrClosed
		}
	case <-ctx.Done():
		// The points may still be written; the caller does not
		// acknowledge them, so the device sends them again, and a point
		// at a millisecond already stored is skipped.
		return fmt.Errorf("history: write: %w", ctx.Err())
	}
}

// Run writes queued points until ctx is cancelled, then writes what is
// queued and returns. It packs closed hours every CompactEvery and
// prunes points past the retention every hour, in the background.
func (r *Recorder) Run(ctx context.Context) error {
	bg := make(chan struct{})
	go func() {
		defer close(bg)
		r.maintain(ctx)
	}()
	defer func() { <-bg }()
	for {
		select {
		case p := <-r.queue:
			r.write(ctx, p)
		case <-ctx.Done():
			close(r.done)
			for {
				select {
				case p := <-r.queue:
					r.write(context.Background(), p)
				default:
					return nil
				}
			}
		}
	}
}

// write writes first and whatever else is queued, up to MaxBatch points,
// in one transaction, and tells every waiter.
func (r *Recorder) write(ctx context.Context, first *pending) {
	batch := []*pending{first}
	n := len(first.points)
more:
	for n < r.opts.MaxBatch {
		select {
		case p := <-r.queue:
			batch = append(batch, p)
			n += len(p.points)
		default:
			break more
		}
	}
	points := make([]store.Point, 0, n)
	for _, p := range batch {
		points = append(points, p.points...)
	}
	start := time.Now()
	err := r.st.AppendPoints(ctx, points)
	mBatch.Observe(time.Since(start).Seconds())
	if err != nil {
		mFailed.Add(uint64(len(points)))
		r.opts.Logger.Warn("history: write points", "points", len(points), "err", err)
		err = fmt.Errorf("history: write: %w", err)
	} else {
		mWritten.Add(uint64(len(points)))
	}
	for _, p := range batch {
		if p.result != nil {
			p.result <- err
		}
	}
}

// maintain packs closed hours and prunes old points until ctx ends.
func (r *Recorder) maintain(ctx context.Context) {
	compact := time.NewTicker(r.opts.CompactEvery)
	defer compact.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	r.prune(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-compact.C:
			// Hours that ended at least a few minutes ago, so that the
			// fixes a device sends late mostly join before the packing.
			if n, err := r.st.CompactPoints(ctx, r.opts.Now().Add(-5*time.Minute)); err != nil && ctx.Err() == nil {
				r.opts.Logger.Warn("history: compact points", "err", err)
			} else if n > 0 {
				r.opts.Logger.Debug("history: compacted points", "points", n)
			}
		case <-prune.C:
			r.prune(ctx)
		}
	}
}

func (r *Recorder) prune(ctx context.Context) {
	if r.opts.Retention <= 0 {
		return
	}
	if n, err := r.st.PrunePoints(ctx, r.opts.Now().Add(-r.opts.Retention)); err != nil && ctx.Err() == nil {
		r.opts.Logger.Warn("history: prune points", "err", err)
	} else if n > 0 {
		r.opts.Logger.Info("history: pruned points", "points", n, "retention", r.opts.Retention)
	}
}
