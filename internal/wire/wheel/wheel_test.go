package wheel

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder counts its fires and remembers the wheel's clock at the last.
type recorder struct {
	w     *Wheel
	t     Timer
	fired atomic.Int32
	at    atomic.Int64
	ch    chan struct{}
}

func newRecorder(w *Wheel) *recorder {
	r := &recorder{w: w, ch: make(chan struct{}, 1)}
	r.t.Init(r)
	return r
}

func (r *recorder) Fire() {
	r.at.Store(r.w.Now())
	r.fired.Add(1)
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *recorder) wait(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(within):
		r.w.mu.Lock()
		at, cursor, n := r.t.at, r.w.cursor, r.w.n
		r.w.mu.Unlock()
		t.Fatalf("timer did not fire within %s: due at %d, wheel at tick %d of %s, clock %d, %d timers set",
			within, at, cursor, time.Duration(r.w.res), r.w.Now(), n)
	}
}

// TestFiresNotBefore: a timer fires once, never before its deadline.
func TestFiresNotBefore(t *testing.T) {
	w := New(5 * time.Millisecond)
	for _, d := range []time.Duration{0, time.Millisecond, 12 * time.Millisecond, 40 * time.Millisecond} {
		r := newRecorder(w)
		set := w.Now()
		w.Set(&r.t, d)
		r.wait(t, 5*time.Second)
		if got := time.Duration(r.at.Load() - set); got < d {
			t.Errorf("set for %s, fired after %s", d, got)
		}
		time.Sleep(20 * time.Millisecond)
		if n := r.fired.Load(); n != 1 {
			t.Errorf("set for %s: fired %d times", d, n)
		}
	}
}

// TestStopAndReset: a stopped timer does not fire; setting it again moves
// its deadline instead of adding one.
func TestStopAndReset(t *testing.T) {
	w := New(time.Millisecond)
	stopped := newRecorder(w)
	w.Set(&stopped.t, 30*time.Millisecond)
	if !w.Stop(&stopped.t) {
		t.Fatal("Stop of a set timer reported false")
	}
	if w.Stop(&stopped.t) {
		t.Fatal("second Stop reported true")
	}
	moved := newRecorder(w)
	w.Set(&moved.t, 20*time.Millisecond)
	w.Set(&moved.t, 80*time.Millisecond)
	if n := w.Len(); n != 1 {
		t.Fatalf("Len = %d after setting one timer twice, want 1", n)
	}
	set := w.Now()
	moved.wait(t, 5*time.Second)
	if got := time.Duration(moved.at.Load() - set); got < 80*time.Millisecond-time.Millisecond {
		t.Errorf("reset to 80ms fired after %s", got)
	}
	time.Sleep(50 * time.Millisecond)
	if n := stopped.fired.Load(); n != 0 {
		t.Errorf("stopped timer fired %d times", n)
	}
	if n := moved.fired.Load(); n != 1 {
		t.Errorf("moved timer fired %d times", n)
	}
}

// rearm sets itself again from Fire until it has fired n times.
type rearm struct {
	w    *Wheel
	t    Timer
	left int
	done *sync.WaitGroup
}

func (r *rearm) Fire() {
	r.left--
	if r.left == 0 {
		r.done.Done()
		return
	}
	r.w.Set(&r.t, time.Millisecond)
}

// TestManyTimers: timers over more than one turn of the wheel, some set
// again from Fire, all fire as often as set; the goroutine ends once none
// is left and starts again for the next.
func TestManyTimers(t *testing.T) {
	w := New(time.Millisecond)
	var wg sync.WaitGroup
	const n = 2200
	rs := make([]*rearm, n)
	for i := range rs {
		rs[i] = &rearm{w: w, left: 1 + i%3, done: &wg}
		rs[i].t.Init(rs[i])
		wg.Add(1)
		// Spread over 0–4.4 s: more than one turn (4096 slots of 1 ms).
		w.Set(&rs[i].t, time.Duration(i)*2*time.Millisecond)
	}
	waitGroup(t, &wg, 30*time.Second)
	if l := w.Len(); l != 0 {
		t.Fatalf("Len = %d after every timer fired", l)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		running := w.running
		w.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the wheel's goroutine still runs with no timer set")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := newRecorder(w)
	w.Set(&r.t, 5*time.Millisecond)
	r.wait(t, 5*time.Second)
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, within time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("timers did not all fire within %s", within)
	}
}

// BenchmarkSetStop is the cost of moving a deadline, which a connection
// does on every heartbeat.
func BenchmarkSetStop(b *testing.B) {
	w := New(10 * time.Millisecond)
	r := newRecorder(w)
	for b.Loop() {
		w.Set(&r.t, time.Minute)
	}
	w.Stop(&r.t)
}
