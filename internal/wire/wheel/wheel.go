// Package wheel keeps many coarse deadlines on one goroutine: a hashed
// timing wheel for the heartbeats, pings and idle timeouts of every open
// connection, so that a connection costs an intrusive Timer in its own
// struct instead of a runtime timer and a closure of its own.
//
// A Timer fires on the first tick at or after its deadline, so up to one
// resolution late; deadlines here are seconds long and a few milliseconds
// do not matter. While no timer is set the wheel's goroutine is stopped.
package wheel

import (
	"sync"
	"time"
)

// slots is how many lists the wheel hashes deadlines over. With a 10 ms
// resolution one turn is about 41 s: a 60 s heartbeat is looked at twice
// before it fires.
const slots = 4096

// Handler is what a Timer calls when it fires.
type Handler interface {
	// Fire runs on the wheel's goroutine and must not block: whatever
	// could wait (a write to a socket) belongs on a goroutine of its own.
	// It may set the timer again.
	Fire()
}

// Timer is one deadline, meant to be a field of the struct it serves (no
// allocation of its own). Its zero value is a stopped timer; Init gives it
// its handler.
type Timer struct {
	prev, next *Timer
	at         int64 // monotonic nanoseconds; 0 while stopped
	h          Handler
}

// Init sets the handler Fire is called on. Call it once, before Set.
func (t *Timer) Init(h Handler) { t.h = h }

// Wheel runs Timers. The zero value is not usable; use New.
type Wheel struct {
	res   int64 // nanoseconds per slot
	start time.Time

	mu      sync.Mutex
	slot    [slots]*Timer // list heads
	n       int           // timers set
	cursor  int64         // the next tick to look at
	running bool          // the goroutine runs
	due     []*Timer      // the goroutine's scratch, reused
}

// New returns a wheel of the given resolution (at least a millisecond).
func New(resolution time.Duration) *Wheel {
	res := max(resolution, time.Millisecond)
	return &Wheel{res: int64(res), start: time.Now()}
}

// Now is the wheel's clock: monotonic nanoseconds since New.
func (w *Wheel) Now() int64 { return int64(time.Since(w.start)) }

// Set makes t fire once d from now (at least one tick ahead), replacing
// any deadline it had.
func (w *Wheel) Set(t *Timer, d time.Duration) { w.SetAt(t, w.Now()+int64(d)) }

// SetAt makes t fire once the wheel's clock (Now) reaches at.
func (w *Wheel) SetAt(t *Timer, at int64) {
	w.mu.Lock()
	w.unlink(t)
	if !w.running {
		w.cursor = max(w.cursor, w.Now()/w.res)
	}
	// A deadline already passed fires on the next tick looked at; the
	// slot is always the one of t.at, so unlink finds it.
	t.at = max(at, w.cursor*w.res, 1)
	i := w.tick(t.at) % slots
	t.prev, t.next = nil, w.slot[i]
	if t.next != nil {
		t.next.prev = t
	}
	w.slot[i] = t
	w.n++
	if !w.running {
		w.running = true
		go w.run()
	}
	w.mu.Unlock()
}

// Stop keeps t from firing; it reports whether t was set. A Fire already
// under way is not waited for.
func (w *Wheel) Stop(t *Timer) bool {
	w.mu.Lock()
	set := t.at != 0
	w.unlink(t)
	w.mu.Unlock()
	return set
}

// Len is how many timers are set.
func (w *Wheel) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// tick is the first tick at which the clock has reached at: the slot a
// deadline waits in.
func (w *Wheel) tick(at int64) int64 { return (at + w.res - 1) / w.res }

// unlink takes t out of its list; w.mu is held.
func (w *Wheel) unlink(t *Timer) {
	if t.at == 0 {
		return
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slot[w.tick(t.at)%slots] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next, t.at = nil, nil, 0
	w.n--
}

// run is the wheel's goroutine: every tick it fires the timers due in the
// slots passed since the last one, and it ends when no timer is set.
func (w *Wheel) run() {
	tk := time.NewTicker(time.Duration(w.res))
	defer tk.Stop()
	for range tk.C {
		now := w.Now()
		w.mu.Lock()
		due := w.due[:0]
		// After a stall longer than a turn every slot is looked at once.
		w.cursor = max(w.cursor, now/w.res-slots+1)
		for ; w.cursor <= now/w.res; w.cursor++ {
			for t := w.slot[w.cursor%slots]; t != nil; {
				next := t.next
				if t.at <= now {
					w.unlink(t)
					due = append(due, t)
				}
				t = next
			}
		}
		if w.n == 0 && len(due) == 0 {
			w.running = false
			w.due = due
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		for i, t := range due {
			t.h.Fire()
			due[i] = nil
		}
		w.mu.Lock()
		w.due = due[:0]
		w.mu.Unlock()
	}
}
