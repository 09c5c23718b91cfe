package events

import (
	"sync"

	"github.com/fleetwire/fleetwire/internal/bus"
)

// asyncDelivery hands changes from the publisher to the hub's delivery
// workers, so that a device's answer does not wait for every subscriber's
// copy to be queued. Changes are sharded by tracker: one worker delivers
// all the changes of a tracker, in the order they were published. Each
// shard's queue is bounded; when it is full the publisher waits for room,
// so nothing is dropped and memory stays bounded.
type asyncDelivery struct {
	mu      sync.RWMutex
	stopped bool
	shards  []chan *bus.Message
	wg      sync.WaitGroup
}

func newAsyncDelivery(h *Hub, shards, depth int) *asyncDelivery {
	a := &asyncDelivery{shards: make([]chan *bus.Message, shards)}
	for i := range a.shards {
		ch := make(chan *bus.Message, depth)
		a.shards[i] = ch
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for m := range ch {
				h.deliver(m)
			}
		}()
	}
	return a
}

// send queues m on its tracker's shard, waiting while the shard is full.
// It reports false once the workers are stopped: the caller then
// delivers m itself.
func (a *asyncDelivery) send(m *bus.Message) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.stopped {
		return false
	}
	k := uint64(m.TrackerID) % uint64(len(a.shards))
	ch := a.shards[k]
	select {
	case ch <- m:
	default:
		mAsyncWaits.Inc()
		ch <- m
	}
	return true
}

// stop delivers what is queued and ends the workers. Later sends report
// false.
func (a *asyncDelivery) stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	for _, ch := range a.shards {
		close(ch)
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// queued is the number of changes waiting for a worker.
func (a *asyncDelivery) queued() int {
	n := 0
	for _, ch := range a.shards {
		n += len(ch)
	}
	return n
}
