package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetwire/fleetwire/internal/bus"
	"github.com/fleetwire/fleetwire/internal/fleet"
	"github.com/fleetwire/fleetwire/internal/metrics"
	"github.com/fleetwire/fleetwire/internal/store"
)

var (
	mStoreWritten = metrics.Default.NewCounter("fleetwire_store_writer_states_total", "States written to the store from the log by this node.", "")
	mStoreFailed  = metrics.Default.NewCounter("fleetwire_store_writer_failures_total", "Batches of states the store refused (delivered again later).", "")
	mStoreLag     = metrics.Default.NewGauge("fleetwire_store_writer_lag", "States in the log not yet written to the store (the shared consumer's pending count).", "")
)

// StoreWriter writes every state of the log to the store, through one
// durable consumer that all nodes share: each batch goes to one node,
// which acknowledges it once the store has it, so a node that dies with a
// batch in hand leaves it to another. The store keeps the newest state of
// each tracker whatever order the batches arrive in (store.Store
// SaveStates keeps a state only over an older one).
type StoreWriter struct {
	b    *Bus
	st   store.Store
	cons jetstream.Consumer

	history store.History
	pointOf func(*bus.Message) (store.Point, bool)
}

// KeepHistory makes the writer also keep the position history from the
// log: pointOf tells the point of a state change, if it has one. A point
// already kept (a batch delivered again) is skipped by the store.
func (w *StoreWriter) KeepHistory(h store.History, pointOf func(*bus.Message) (store.Point, bool)) {
	w.history, w.pointOf = h, pointOf
}

// StoreWriter creates (or joins) the installation's store consumer.
func (b *Bus) StoreWriter(ctx context.Context, st store.Store) (*StoreWriter, error) {
	cons, err := b.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       b.opts.Prefix + "_store",
		Description:   "fleetwire store writer: the latest states into the store",
		FilterSubject: b.subj.states(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// A batch held by a node that died goes to another after
		// AckWait; a save is far shorter, and one delivered twice is
		// harmless (newer states and known points are kept).
		AckWait:       10 * time.Second,
		MaxAckPending: 20000,
		MaxDeliver:    -1,
		Replicas:      b.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("store consumer: %w", err)
	}
	return &StoreWriter{b: b, st: st, cons: cons}, nil
}

// Run writes batches until ctx is cancelled.
func (w *StoreWriter) Run(ctx context.Context) error {
	lag := time.NewTicker(5 * time.Second)
	defer lag.Stop()
	for ctx.Err() == nil {
		select {
		case <-lag.C:
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if info, err := w.cons.Info(ictx); err == nil {
				mStoreLag.Set(int64(info.NumPending + uint64(info.NumAckPending)))
			}
			cancel()
		default:
		}
		batch, err := w.cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.b.log.Debug("store writer: fetch", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		w.write(ctx, batch)
	}
	return nil
}

// write saves one batch and acknowledges it, or asks for it again later.
func (w *StoreWriter) write(ctx context.Context, batch jetstream.MessageBatch) {
	var msgs []jetstream.Msg
	var points []store.Point
	latest := map[int64]*fleet.State{}
	for msg := range batch.Messages() {
		msgs = append(msgs, msg)
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		m, err := decode(msg.Data(), md.Sequence.Stream)
		if err != nil {
			mUndecodable.Inc()
			continue
		}
		if w.pointOf != nil {
			if p, ok := w.pointOf(m); ok {
				points = append(points, p)
			}
		}
		if cur := latest[m.TrackerID]; cur == nil || cur.Seq < m.State.Seq {
			m.State.TrackerID = m.TrackerID
			latest[m.TrackerID] = m.State
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
		w.b.log.Debug("store writer: batch", "err", err)
	}
	if len(msgs) == 0 {
		return
	}
	states := make([]*fleet.State, 0, len(latest))
	for _, s := range latest {
		states = append(states, s)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if len(points) > 0 && w.history != nil {
		if err := w.history.AppendPoints(sctx, points); err != nil {
			mStoreFailed.Inc()
			w.b.log.Warn("store writer: append history", "count", len(points), "err", err)
			for _, msg := range msgs {
				_ = msg.NakWithDelay(2 * time.Second)
			}
			return
		}
	}
	err := w.st.SaveStates(sctx, states)
	if errors.Is(err, store.ErrNotFound) {
		// A state of a tracker the store does not have (never, since
		// trackers are created in the store first, unless it was removed
		// by hand): keep the others.
		err = nil
		for _, s := range states {
			if e := w.st.SaveStates(sctx, []*fleet.State{s}); e != nil && !errors.Is(e, store.ErrNotFound) {
				err = e
				break
			} else if e != nil {
				w.b.log.Warn("store writer: state of an unknown tracker dropped", "tracker", s.TrackerID)
			}
		}
	}
	if err != nil {
		mStoreFailed.Inc()
		w.b.log.Warn("store writer: save states", "count", len(states), "err", err)
		for _, msg := range msgs {
			_ = msg.NakWithDelay(2 * time.Second)
		}
		return
	}
	mStoreWritten.Add(uint64(len(states)))
	w.b.log.Debug("store writer: batch written", "messages", len(msgs), "states", len(states), "points", len(points))
	for _, msg := range msgs {
		_ = msg.Ack()
	}
}
