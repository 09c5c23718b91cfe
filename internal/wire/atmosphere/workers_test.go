package atmosphere

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkersRunEveryTask: tasks handed over from many goroutines at once
// all run, exactly once, tasks blocked for longer than stuckAfter hold up
// none of the others, and the parked goroutines end once it is quiet.
func TestWorkersRunEveryTask(t *testing.T) {
	p := newWorkers(4, 8, 5*time.Millisecond, 50*time.Millisecond)
	release := make(chan struct{})
	var blocked sync.WaitGroup
	const slow = 10 // more than max: writes to slow clients
	blocked.Add(slow)
	for range slow {
		p.run(func() { blocked.Done(); <-release })
	}
	blocked.Wait()
	const producers, each = 16, 2000
	var ran atomic.Int64
	var done sync.WaitGroup
	done.Add(producers * each)
	for range producers {
		go func() {
			for range each {
				p.run(func() { ran.Add(1); done.Done() })
			}
		}()
	}
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d tasks ran behind %d blocked ones", ran.Load(), producers*each, slow)
	}
	close(release)
	if got := ran.Load(); got != producers*each {
		t.Fatalf("%d tasks ran, want %d", got, producers*each)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		live, running, waiting := len(p.all), p.running, len(p.queue)-p.head
		p.mu.Unlock()
		if live == 0 && running == 0 && waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines live (%d running, %d tasks waiting) 5s after the last task", live, running, waiting)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWorkersBounded: however many tasks are handed over at once, at most
// max run at a time while none is stuck, and they run in the order given.
func TestWorkersBounded(t *testing.T) {
	p := newWorkers(3, 8, time.Hour, time.Second)
	var mu sync.Mutex
	var order []int
	var cur, peak atomic.Int32
	var done sync.WaitGroup
	const n = 500
	done.Add(n)
	gate := make(chan struct{})
	for i := range n {
		p.run(func() {
			if i == 0 {
				<-gate
			}
			c := cur.Add(1)
			for {
				old := peak.Load()
				if c <= old || peak.CompareAndSwap(old, c) {
					break
				}
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			time.Sleep(50 * time.Microsecond)
			cur.Add(-1)
			done.Done()
		})
	}
	if w := p.Waiting(); w != n-3 {
		t.Fatalf("%d tasks wait, want %d", w, n-3)
	}
	close(gate)
	done.Wait()
	if got := peak.Load(); got > 3 {
		t.Fatalf("%d tasks ran at once, want at most 3", got)
	}
	// Past the first three (started at once), tasks start in line order.
	for k := 3; k < len(order); k++ {
		if order[k] < 3 {
			continue
		}
		if k+1 < len(order) && order[k+1] >= 3 && order[k+1] < order[k]-3 {
			t.Fatalf("task %d ran well after task %d: %v", order[k+1], order[k], order[:min(len(order), 40)])
		}
	}
}
