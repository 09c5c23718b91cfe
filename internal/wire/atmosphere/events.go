package atmosphere

import (
	"sync"
	"sync/atomic"
)

// events is a small set of events that each happen once, sharing one lock
// and one word of flags. The first two have a channel closed when they
// have happened; the channel is made only when somebody asks for it: a
// WebSocket attachment never does, and idle connections are many. Events
// from 2 on are flags alone.
type events struct {
	mu    sync.Mutex
	fired atomic.Uint32 // bit i: event i happened
	ch    [2]chan struct{}
}

// fire makes event i happen and reports whether this call did; calls
// after the first do nothing. before, if not nil, runs first under the
// lock, only in the call that fires: what it writes is seen by anyone who
// learns (happened, the channel) that the event happened.
func (e *events) fire(i int, before func()) bool {
	bit := uint32(1) << i
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fired.Load()&bit != 0 {
		return false
	}
	if before != nil {
		before()
	}
	e.fired.Or(bit)
	if i < len(e.ch) && e.ch[i] != nil {
		close(e.ch[i])
	}
	return true
}

// happened reports whether event i was fired.
func (e *events) happened(i int) bool { return e.fired.Load()&(1<<i) != 0 }

// C returns a channel closed once event i (0 or 1) has happened.
func (e *events) C(i int) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ch[i] == nil {
		e.ch[i] = make(chan struct{})
		if e.happened(i) {
			close(e.ch[i])
		}
	}
	return e.ch[i]
}
