package atmosphere

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkersRunEveryTask: tasks handed over from many goroutines at once
// all run, exactly once, a blocked task holds up none of the others, and
// the waiting goroutines end once it is quiet.
func TestWorkersRunEveryTask(t *testing.T) {
	w := &workers{tasks: make(chan func())}
	release := make(chan struct{})
	var blocked sync.WaitGroup
	blocked.Add(maxWorkers + 1)
	for range maxWorkers + 1 {
		w.run(func() { blocked.Done(); <-release }) // writes to slow clients
	}
	blocked.Wait()
	const producers, each = 16, 2000
	var ran atomic.Int64
	var done sync.WaitGroup
	done.Add(producers * each)
	for range producers {
		go func() {
			for range each {
				w.run(func() { ran.Add(1); done.Done() })
			}
		}()
	}
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d tasks ran behind %d blocked ones", ran.Load(), producers*each, maxWorkers+1)
	}
	close(release)
	if got := ran.Load(); got != producers*each {
		t.Fatalf("%d tasks ran, want %d", got, producers*each)
	}
	deadline := time.Now().Add(5 * workerIdle)
	for w.waiting.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still waiting %v after the last task", w.waiting.Load(), 5*workerIdle)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
