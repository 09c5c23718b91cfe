package outbox

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkPushDrain queues a message and takes it off again, per op: a
// writer that drains each message as it comes (batch 1), or lets a few
// gather before one drain, as a busy connection's writer does.
func BenchmarkPushDrain(b *testing.B) {
	msg := make([]byte, 300) // about a compact state event
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			q := New(Limits{})
			dst := make([]Entry, 0, batch)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			n := 0
			for b.Loop() {
				if err := q.Push(msg); err != nil {
					b.Fatal(err)
				}
				if n++; n == batch {
					dst = q.Drain(dst[:0], 0)
					if len(dst) != batch {
						b.Fatalf("drained %d, want %d", len(dst), batch)
					}
					n = 0
				}
			}
		})
	}
}

// BenchmarkPushDrainParallel has producers on every P and one consumer
// draining as Ready signals: the contention of a fan-out into a busy
// connection.
func BenchmarkPushDrainParallel(b *testing.B) {
	msg := make([]byte, 300)
	q := New(Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30})
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		var dst []Entry
		taken := 0
		for {
			select {
			case <-q.Ready():
				dst = q.Drain(dst[:0], 0)
				taken += len(dst)
			case <-stop:
				taken += len(q.Drain(dst[:0], 0))
				done <- taken
				return
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for q.Push(msg) != nil {
				runtime.Gosched() // full: let the consumer catch up
			}
		}
	})
	close(stop)
	if taken := <-done; taken == 0 {
		b.Fatal("the consumer took nothing")
	}
}
