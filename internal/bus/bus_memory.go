package bus

import (
	"context"
	"sync"
	"sync/atomic"
)

// Memory is the in-process Bus: Publish calls every subscriber directly.
type Memory struct {
	mu     sync.Mutex
	subs   atomic.Pointer[[]*subscriber]
	closed atomic.Bool
}

type subscriber struct{ fn func(*Message) }

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory {
	b := &Memory{}
	b.subs.Store(&[]*subscriber{})
	return b
}

// Publish delivers m to every subscriber before returning.
func (b *Memory) Publish(_ context.Context, m *Message) error {
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

// Close stops delivery of later messages.
func (b *Memory) Close() error {
	b.closed.Store(true)
	return nil
}
