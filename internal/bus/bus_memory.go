package bus

import (
	"context"
	"sync"
	"sync/atomic"
)

// Memory is the in-process Bus of a single node: Publish numbers the
// message and calls every receiver directly. There are no other nodes, so
// Follow has nothing to fetch and Replay nothing to read; the registry of
// the one node is the fleet's only picture.
type Memory struct {
	mu     sync.Mutex
	subs   atomic.Pointer[[]*subscriber]
	seq    atomic.Uint64
	closed atomic.Bool
}

type subscriber struct{ fn func(*Message) }

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory {
	b := &Memory{}
	b.subs.Store(&[]*subscriber{})
	return b
}

// Advance makes later messages number above seq: a node that loaded
// states numbered up to seq from its store carries on from there.
func (b *Memory) Advance(seq uint64) {
	for {
		cur := b.seq.Load()
		if cur >= seq || b.seq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Publish numbers m and delivers it to every receiver before returning.
func (b *Memory) Publish(_ context.Context, m *Message) error {
	m.Seq = b.seq.Add(1)
	m.Local = true
	if m.State != nil {
		m.State.Seq = m.Seq
	}
	if b.closed.Load() {
		return nil
	}
	for _, s := range *b.subs.Load() {
		s.fn(m)
	}
	return nil
}

// Subscribe adds fn; the returned func removes it.
func (b *Memory) Subscribe(fn func(*Message)) (cancel func()) {
	s := &subscriber{fn: fn}
	b.mu.Lock()
	old := *b.subs.Load()
	next := make([]*subscriber, 0, len(old)+1)
	next = append(append(next, old...), s)
	b.subs.Store(&next)
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		cur := *b.subs.Load()
		next := make([]*subscriber, 0, len(cur))
		for _, x := range cur {
			if x != s {
				next = append(next, x)
			}
		}
		b.subs.Store(&next)
	}
}

// Follow has nothing to do on a single node.
func (b *Memory) Follow(context.Context, int64) (func(), error) { return func() {}, nil }

// Position is the last sequence number: every message is delivered as it
// is published.
func (b *Memory) Position(int64) uint64 { return b.seq.Load() }

// Latest returns nil: the memory bus keeps no log; the node's registry is
// the only picture of the fleet.
func (b *Memory) Latest(context.Context, int64, int64) (*Message, error) { return nil, nil }

// Replay reads nothing: the memory bus keeps no log.
func (b *Memory) Replay(context.Context, int64, uint64, func(*Message) bool) (uint64, error) {
	return 0, nil
}

// Healthy is always nil.
func (b *Memory) Healthy() error { return nil }

// Close stops delivery of later messages.
func (b *Memory) Close() error {
	b.closed.Store(true)
	return nil
}

var _ Bus = (*Memory)(nil)
