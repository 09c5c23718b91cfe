package atmosphere

import (
	"sync"
	"sync/atomic"
)

// signal is an event that happens once, with a channel closed when it has
// happened. The channel is made only when somebody asks for it: a
// WebSocket attachment never does, and idle connections are many.
type signal struct {
	fired atomic.Bool
	mu    sync.Mutex
	ch    chan struct{}
}

// fire marks the event as happened; calls after the first do nothing.
func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fired.Load() {
		return
	}
	s.fired.Store(true)
	if s.ch != nil {
		close(s.ch)
	}
}

// happened reports whether fire was called.
func (s *signal) happened() bool { return s.fired.Load() }

// C returns a channel closed once the event has happened.
func (s *signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
		if s.fired.Load() {
			close(s.ch)
		}
	}
	return s.ch
}
