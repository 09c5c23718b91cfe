package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// tail is one of the ordered consumers a node follows the log with: the
// installation's tracker metadata, or one user's messages. It remembers
// the last message it handed on, so that the bus can start a new
// consumer right after it.
//
// The bus, not only the library, decides when a tail needs a new
// consumer. Ordered consumers live in NATS's memory and are gone when
// NATS restarts; nats.go notices that and recreates them, but with a
// backoff of up to 10 s between attempts, and a recreation whose Consume
// fails is not tried again. So whenever the connection came back, the bus
// restarts every tail as soon as JetStream answers (see Bus.watch).
//
// Each consumer a tail starts has a generation; a message from an older
// generation is dropped, and a restart waits until the message being
// handed on (if any) is done before it reads the position. Nothing is
// handed on twice and nothing after the position is skipped.
type tail struct {
	b      *Bus
	filter string
	syncTo uint64                          // messages at or below are Sync messages
	seen   func(md *jetstream.MsgMetadata) // called after each message handed on; may be nil

	pos atomic.Uint64 // the last sequence number handed on

	mu      sync.Mutex
	idle    sync.Cond // signalled when busy drops to 0
	gen     int       // generation of the current consumer
	busy    int       // messages being handed on
	cc      jetstream.ConsumeContext
	stopped bool
}

func newTail(b *Bus, filter string, pos, syncTo uint64) *tail {
	t := &tail{b: b, filter: filter, syncTo: syncTo}
	t.idle.L = &t.mu
	t.pos.Store(pos)
	return t
}

var errTailStopped = errors.New("tail stopped")

// start creates a consumer with cfg and hands its messages on. It
// returns the consumer, whose cached info tells how much was pending.
func (t *tail) start(ctx context.Context, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil, errTailStopped
	}
	t.gen++
	gen := t.gen
	old := t.cc
	t.cc = nil
	t.mu.Unlock()
	if old != nil {
		old.Stop()
	}
	cons, err := t.b.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { t.hand(msg, gen) }, followPull...)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.gen != gen || t.stopped {
		t.mu.Unlock()
		cc.Stop()
		return nil, errTailStopped
	}
	t.cc = cc
	t.mu.Unlock()
	return cons, nil
}

// hand delivers one message of the consumer of generation gen.
func (t *tail) hand(msg jetstream.Msg, gen int) {
	md, err := msg.Metadata()
	if err != nil {
		mUndecodable.Inc()
		return
	}
	t.mu.Lock()
	if t.gen != gen || t.stopped {
		t.mu.Unlock()
		return
	}
	t.busy++
	t.mu.Unlock()
	t.b.receive(msg, md, t.syncTo)
	for {
		p := t.pos.Load()
		if md.Sequence.Stream <= p || t.pos.CompareAndSwap(p, md.Sequence.Stream) {
			break
		}
	}
	if t.seen != nil {
		t.seen(md)
	}
	t.mu.Lock()
	t.busy--
	if t.busy == 0 {
		t.idle.Broadcast()
	}
	t.mu.Unlock()
}

// restart replaces the consumer with one that starts after the last
// message handed on.
func (t *tail) restart(ctx context.Context) error {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return nil
	}
	// Retire the current consumer and wait for its message in hand, so
	// that the position read below is final for it.
	t.gen++
	for t.busy > 0 {
		t.idle.Wait()
	}
	from := t.pos.Load() + 1
	t.mu.Unlock()
	_, err := t.start(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{t.filter}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: from, InactiveThreshold: time.Minute,
	})
	if err != nil && !errors.Is(err, errTailStopped) {
		return fmt.Errorf("follow %s from %d: %w", t.filter, from, err)
	}
	return nil
}

// stop ends the tail. It does not wait for a message in hand, so it may
// be called while one is handed on.
func (t *tail) stop() {
	t.mu.Lock()
	t.stopped = true
	t.gen++
	cc := t.cc
	t.cc = nil
	t.mu.Unlock()
	if cc != nil {
		cc.Stop()
	}
}
