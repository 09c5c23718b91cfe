package atmosphere

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
			<-gate // the first three hold their workers until all are handed over
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
	if w := p.waiting(); w != n-3 {
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

// TestSlowReadersHoldUpNoOne: more clients than there are writers stop
// reading while megabytes are queued for them, so that every write to
// them blocks until its deadline; a client that reads still gets each of
// its messages at once.
func TestSlowReadersHoldUpNoOne(t *testing.T) {
	e := newEnv(t, Options{WriteTimeout: 30 * time.Second})
	// Small receive buffers, so that the server's writes block soon.
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		}
		return c, err
	}}
	dial := func() (*websocket.Conn, *echoSession) {
		t.Helper()
		c, _, err := dialer.Dial(e.wsURL(hTrackingID, "0", hTransport, "websocket", hProtocol, "true", hFramework, "5.0.7"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		read(t, c) // the handshake
		return c, e.nextOpened()
	}
	big := []byte(strings.Repeat("x", 1<<20))
	slow := 3 * writers.max
	for range slow {
		_, s := dial() // never read again
		for range 8 {
			if err := s.q.Push(big); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // the writes to the slow clients block
	c, s := dial()
	for i := range 50 {
		msg := "m" + strconv.Itoa(i)
		start := time.Now()
		s.Push(t, msg)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d behind %d blocked clients: %v after %v", i, slow, err, time.Since(start))
		}
		if string(b) != msg {
			t.Fatalf("got %q, want %q", b, msg)
		}
	}
}
