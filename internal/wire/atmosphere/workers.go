package atmosphere

import (
	"sync/atomic"
	"time"
)

// workers runs short tasks (a connection's write loop) on goroutines that
// outlive them: a task is handed to a goroutine waiting for one, or else
// starts a new goroutine, which afterwards waits up to workerIdle for
// another task while fewer than maxWorkers wait. A burst of deliveries to
// thousands of connections then reuses goroutines whose stacks have
// already grown to what a write needs, instead of creating and growing
// one per write; a quiet server keeps none. A task that blocks (a write
// to a slow client, until its deadline) holds only its own goroutine:
// handing off never waits.
type workers struct {
	tasks   chan func()
	waiting atomic.Int32
}

const (
	// maxWorkers bounds the goroutines waiting for a task.
	maxWorkers = 256
	// workerIdle is how long a goroutine waits for a next task.
	workerIdle = time.Second
)

var writers = &workers{tasks: make(chan func())}

// run runs f on a waiting goroutine or a new one.
func (w *workers) run(f func()) {
	select {
	case w.tasks <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	var idle *time.Timer
	for {
		f()
		if w.waiting.Add(1) > maxWorkers {
			w.waiting.Add(-1)
			return
		}
		if idle == nil {
			idle = time.NewTimer(workerIdle)
		} else {
			idle.Reset(workerIdle)
		}
		select {
		case f = <-w.tasks:
			w.waiting.Add(-1)
		case <-idle.C:
			w.waiting.Add(-1)
			return
		}
	}
}
