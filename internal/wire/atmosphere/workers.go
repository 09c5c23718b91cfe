package atmosphere

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// workers runs short tasks (a connection's write step) on a few
// goroutines, in the order they were handed over.
//
// At most max tasks run at once; the rest wait in line. A burst of
// deliveries to thousands of connections is then written by a handful of
// goroutines taking the connections in turn, instead of thousands of
// goroutines made runnable at once: the producer (a device's request) is
// not starved behind the writes it caused, and a connection waiting its
// turn gathers what arrives meanwhile into the same write. With a worker
// free, a task starts at once, so a quiet server adds no wait.
//
// A task that blocks (a write to a slow client, until its deadline)
// stops counting against max once it has run for stuckAfter: another
// worker takes the line, so a slow client holds up only its own
// goroutine. Workers wait up to idleFor for a next task while at most
// maxIdle wait; a quiet server keeps none.
type workers struct {
	max        int
	maxIdle    int
	stuckAfter time.Duration
	idleFor    time.Duration

	mu      sync.Mutex
	queue   []func() // waiting tasks from head on
	head    int
	running int       // workers in a task and not stuck
	idle    []*worker // parked workers, the last parked last
	all     []*worker // live workers
	watch   *time.Timer
	armed   bool
}

// worker is one goroutine of a workers.
type worker struct {
	ch    chan func()  // the next task, handed to a parked worker
	since atomic.Int64 // when its task started (now), 0 between tasks
	stuck bool         // counted out of running; under workers.mu
}

func newWorkers(max, maxIdle int, stuckAfter, idleFor time.Duration) *workers {
	return &workers{max: max, maxIdle: maxIdle, stuckAfter: stuckAfter, idleFor: idleFor}
}

// writers runs the WebSocket write steps of the process.
var writers = newWorkers(max(4, 2*runtime.GOMAXPROCS(0)), 64, 20*time.Millisecond, time.Second)

// run runs f on a parked worker, a new one while fewer than max run, or
// else after the tasks already waiting.
func (p *workers) run(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		// A worker parks only when the line is empty.
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.running++
		p.mu.Unlock()
		w.ch <- f
		return
	}
	if p.running < p.max {
		p.spawn(f)
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, f)
	if !p.armed {
		p.armed = true
		if p.watch == nil {
			p.watch = time.AfterFunc(p.stuckAfter, p.check)
		} else {
			p.watch.Reset(p.stuckAfter)
		}
	}
	p.mu.Unlock()
}

// spawn starts a worker with task f. Callers hold p.mu.
func (p *workers) spawn(f func()) {
	p.running++
	w := &worker{ch: make(chan func(), 1)}
	p.all = append(p.all, w)
	go p.work(w, f)
}

// waiting is how many tasks wait for a worker.
func (p *workers) waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) - p.head
}

// pop takes the first waiting task, nil if none. Callers hold p.mu.
func (p *workers) pop() func() {
	if p.head == len(p.queue) {
		return nil
	}
	f := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
		if cap(p.queue) > 1<<16 {
			p.queue = nil
		}
	}
	return f
}

// drop forgets w, which ends. Callers hold p.mu.
func (p *workers) drop(w *worker) {
	for i, x := range p.all {
		if x == w {
			last := len(p.all) - 1
			p.all[i], p.all[last] = p.all[last], nil
			p.all = p.all[:last]
			return
		}
	}
}

func (p *workers) work(w *worker, f func()) {
	var timer *time.Timer
	for f != nil {
		w.since.Store(now())
		f()
		w.since.Store(0)
		p.mu.Lock()
		if w.stuck {
			w.stuck = false
			p.running++
		}
		if p.running > p.max {
			// Others took over while this task was stuck.
			p.running--
			p.drop(w)
			p.mu.Unlock()
			return
		}
		if f = p.pop(); f != nil {
			p.mu.Unlock()
			continue
		}
		p.running--
		if len(p.idle) >= p.maxIdle {
			p.drop(w)
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, w)
		p.mu.Unlock()

		if timer == nil {
			timer = time.NewTimer(p.idleFor)
		} else {
			timer.Reset(p.idleFor)
		}
		select {
		case f = <-w.ch:
			timer.Stop()
		case <-timer.C:
			f = p.retire(w)
		}
	}
}

// retire ends parked worker w after its idle time, unless run has just
// handed it a task, which it then returns.
func (p *workers) retire(w *worker) func() {
	p.mu.Lock()
	for i, x := range p.idle {
		if x == w {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.drop(w)
			p.mu.Unlock()
			return nil
		}
	}
	p.mu.Unlock()
	return <-w.ch
}

// check runs while tasks wait: workers in one task for stuckAfter stop
// counting against max, and new workers take the waiting tasks.
func (p *workers) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head == len(p.queue) {
		p.armed = false
		return
	}
	t := now()
	for _, w := range p.all {
		if s := w.since.Load(); !w.stuck && s != 0 && time.Duration(t-s) >= p.stuckAfter {
			w.stuck = true
			p.running--
		}
	}
	for p.running < p.max {
		f := p.pop()
		if f == nil {
			break
		}
		p.spawn(f)
	}
	p.watch.Reset(p.stuckAfter)
}
